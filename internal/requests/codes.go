package requests

import (
	"fmt"
	"strings"
)

// Codes counts failed record sends by error code, in the order the codes first appeared;
// a few codes are kept, the rest summed as others.
type Codes struct {
	codes  [4]string
	counts [4]int
	others int
}

func (t *Codes) add(code string, n int) {
	for i := range t.codes {
		switch t.codes[i] {
		case code:
			t.counts[i] += n
			return
		case "":
			t.codes[i], t.counts[i] = code, n
			return
		}
	}
	t.others += n
}

// First returns the first code counted, or "".
func (t *Codes) First() string { return t.codes[0] }

// String is e.g. "ProvisionedThroughputExceededException ×230, InternalFailure ×10".
func (t *Codes) String() string {
	var sb strings.Builder
	for i, c := range t.codes {
		if c == "" {
			break
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s ×%d", c, t.counts[i])
	}
	if t.others > 0 {
		fmt.Fprintf(&sb, ", others ×%d", t.others)
	}
	return sb.String()
}
