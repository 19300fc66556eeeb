package kinesismock

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Kinesis speaks PutRecords in JSON (application/x-amz-json-1.1) and in CBOR
// (application/x-amz-cbor-1.1: the same members, blobs as byte strings), and
// answers in the protocol of the request. The proxies do too.
const (
	jsonContentType = "application/x-amz-json-1.1"
	cborContentType = "application/x-amz-cbor-1.1"
)

// isCBOR reports whether r's body is CBOR.
func isCBOR(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == cborContentType
}

// readPutRecords reads r's PutRecords body into in, and reports whether it is CBOR. When the
// body cannot be read (the client went away) or decoded (answered with a SerializationException),
// ok is false and the request is done with.
func readPutRecords(w http.ResponseWriter, r *http.Request, in *putRecordsIn) (inCBOR, ok bool) {
	inCBOR = isCBOR(r)
	body, err := io.ReadAll(io.LimitReader(r.Body, 8*MaxBytesPerRequest))
	if err != nil {
		return inCBOR, false
	}
	if err := decodePutRecords(body, inCBOR, in); err != nil {
		writeAPIError(w, http.StatusBadRequest, "SerializationException", err.Error(), inCBOR)
		return inCBOR, false
	}
	return inCBOR, true
}

// decodePutRecords reads a PutRecords request body, in CBOR or JSON, into
// in; record data is left in base64, as the JSON carries it.
func decodePutRecords(body []byte, isCBOR bool, in *putRecordsIn) error {
	if !isCBOR {
		return json.Unmarshal(body, in)
	}
	v, err := cbor.Decode(body)
	if err != nil {
		return err
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return fmt.Errorf("PutRecords body is a %T, not a map", v)
	}
	text := func(m cbor.Map, key string) (string, error) {
		switch v := m[key].(type) {
		case nil:
			return "", nil
		case cbor.String:
			return string(v), nil
		default:
			return "", fmt.Errorf("%s is a %T, not a text string", key, v)
		}
	}
	if in.StreamName, err = text(m, "StreamName"); err != nil {
		return err
	}
	if in.StreamARN, err = text(m, "StreamARN"); err != nil {
		return err
	}
	recs, ok := m["Records"].(cbor.List)
	if !ok {
		return errors.New("Records is not an array")
	}
	for i, rv := range recs {
		rm, ok := rv.(cbor.Map)
		if !ok {
			return fmt.Errorf("record %d is a %T, not a map", i, rv)
		}
		data, ok := rm["Data"].(cbor.Slice)
		if !ok {
			return fmt.Errorf("record %d: Data is a %T, not a byte string", i, rm["Data"])
		}
		var rec putRecordsEntry
		rec.Data = base64.StdEncoding.EncodeToString(data)
		if rec.PartitionKey, err = text(rm, "PartitionKey"); err != nil {
			return err
		}
		if rec.ExplicitHashKey, err = text(rm, "ExplicitHashKey"); err != nil {
			return err
		}
		in.Records = append(in.Records, rec)
	}
	return nil
}

// writePutRecords answers a PutRecords request with out, in CBOR or JSON.
func writePutRecords(w http.ResponseWriter, out putRecordsOut, isCBOR bool) {
	if !isCBOR {
		b, _ := json.Marshal(out)
		w.Header().Set("Content-Type", jsonContentType)
		_, _ = w.Write(b)
		return
	}
	recs := make(cbor.List, len(out.Records))
	for i, r := range out.Records {
		m := cbor.Map{}
		for k, v := range map[string]string{"SequenceNumber": r.SequenceNumber, "ShardId": r.ShardId,
			"ErrorCode": r.ErrorCode, "ErrorMessage": r.ErrorMessage} {
			if v != "" {
				m[k] = cbor.String(v)
			}
		}
		recs[i] = m
	}
	m := cbor.Map{"FailedRecordCount": cbor.Uint(out.FailedRecordCount), "Records": recs}
	if out.EncryptionType != "" {
		m["EncryptionType"] = cbor.String(out.EncryptionType)
	}
	w.Header().Set("Content-Type", cborContentType)
	_, _ = w.Write(cbor.Encode(m))
}

// writeAPIError answers with a Kinesis error. In JSON it names the code in
// the X-Amzn-ErrorType header too; in CBOR only in the body's __type, as
// kinesis-mock does, so that the client must read the CBOR.
func writeAPIError(w http.ResponseWriter, status int, code, msg string, isCBOR bool) {
	if isCBOR {
		w.Header().Set("Content-Type", cborContentType)
		w.WriteHeader(status)
		_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String(code), "message": cbor.String(msg)}))
		return
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}
