//go:build !amd64 || purego

package wire

// encodeBase64 writes the standard base64 encoding of src to dst, which has room for it.
func encodeBase64(dst, src []byte) { fastEncodeBase64(dst, src) }

// hasAVX2 is false: there is no assembly path to turn off.
var hasAVX2 = false
