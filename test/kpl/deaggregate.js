'use strict';
// An independent check of the plugin's KPL aggregated records: it deaggregates them with
// aws-kinesis-agg, AWS Labs' Node.js deaggregator (protobufjs, MD5 checked), and prints what a
// consumer would get. Run by the end-to-end tests (test/internal/kpl); needs `npm ci` in test/.
//
// stdin:  one Kinesis record's data per line, base64.
// stdout: one JSON line per user record, in order:
//   {"record": <input line, from 0>, "subSequence": <position in the aggregate>,
//    "aggregated": <whether the input was a KPL aggregate>,
//    "partitionKey": ..., "explicitHashKey": ... (null when the record has none),
//    "data": <base64>}
// Exit status 1 with a message on stderr when a record cannot be deaggregated (bad magic is not an
// error: such a record is a plain one, printed with "aggregated": false), 2 when the package is
// missing.

let agg;
try {
  agg = require('aws-kinesis-agg');
} catch (e) {
  process.stderr.write('deaggregate.js: cannot load aws-kinesis-agg (' + e.message.split('\n')[0] +
    '): run `npm ci` in test/\n');
  process.exit(2);
}

const MAGIC = Buffer.from('f3899ac2', 'hex');

function deaggregate(line, n) {
  const data = Buffer.from(line, 'base64');
  const aggregated = data.length >= MAGIC.length && data.subarray(0, MAGIC.length).equals(MAGIC);
  let out;
  let failure;
  // deaggregateSync calls back synchronously; computeChecksums = true verifies the MD5.
  agg.deaggregateSync({ data: line }, true, (err, records) => {
    if (err) {
      failure = err;
    } else {
      out = records;
    }
  });
  if (failure) {
    throw new Error('record ' + n + ': ' + (failure.message || failure));
  }
  if (!out) {
    throw new Error('record ' + n + ': the deaggregator returned nothing');
  }
  return out.map((r, i) => JSON.stringify({
    record: n,
    subSequence: i,
    aggregated: aggregated,
    partitionKey: r.partitionKey === undefined ? null : r.partitionKey,
    explicitHashKey: r.explicitPartitionKey === undefined ? null : r.explicitPartitionKey,
    data: r.data,
  }));
}

function main(input) {
  const lines = input.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') {
    lines.pop();
  }
  const out = [];
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(line)) {
      throw new Error('record ' + n + ': not base64');
    }
    out.push(...deaggregate(line, n));
  }
  return out;
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  let out;
  try {
    out = main(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    process.stderr.write('deaggregate.js: ' + e.message + '\n');
    process.exit(1);
  }
  for (const line of out) {
    process.stdout.write(line + '\n');
  }
});
