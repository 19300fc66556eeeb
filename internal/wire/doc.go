// Package wire owns the bytes of PutRecords on the wire, in both of Kinesis's protocols: the
// request body writer (the awsJson1_1 body, byte for byte what the SDK writes, with the base64 of
// record data written straight into an exactly sized pooled buffer; or the same members in CBOR,
// application/x-amz-cbor-1.1, the data as raw bytes), the response reader (a successful PutRecords
// response, in JSON or CBOR, read in place into reused buffers), and the base64 kernels. Both are
// installed in the SDK's middleware stack (RequestBodies.Install, InstallResponseDecoder) in place
// of the SDK's serializer and deserializer for PutRecords, and hand every other operation, and
// every error response, to the SDK's (an error in CBOR rewritten as JSON, which the SDK reads).
//
// It does not build clients, sign, send or classify errors (package kinesis does), nor read or
// write CBOR items themselves (package cbor does: wire knows the members, cbor the encoding), and
// knows nothing of records or batching.
package wire
