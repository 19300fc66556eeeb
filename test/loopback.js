'use strict';
// Preloaded into kinesis-mock with `node -r` by the end-to-end tests: every
// server it opens listens on 127.0.0.1 only, whatever host it asks for
// (it binds 0.0.0.0 by default). Unix socket paths and inherited handles are
// left alone.
const net = require('net');

const LOOPBACK = '127.0.0.1';
const listen = net.Server.prototype.listen;

function isPort(v) {
  return typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v));
}

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !first._handle &&
      first.fd === undefined && first.path === undefined) {
    // listen(options[, callback])
    args[0] = Object.assign({}, first, { host: LOOPBACK, ipv6Only: false });
  } else if (isPort(first) || first === undefined) {
    // listen([port][, host][, backlog][, callback])
    if (args.length > 1 && (typeof args[1] === 'string' || args[1] == null)) {
      args[1] = LOOPBACK;
    } else {
      args.splice(1, 0, LOOPBACK);
    }
    if (args[0] === undefined) args[0] = 0;
  }
  return listen.apply(this, args);
};

// With LOOPBACK_EXIT_ON_STDIN_EOF=1, exit when stdin closes: the test process
// that started the server holds the other end, so the server never outlives it
// (not even when the test binary panics or is killed).
if (process.env.LOOPBACK_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
