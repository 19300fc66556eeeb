package timefmt

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/strftime"
)

// Timestamps used below, with their UTC calendar values worked out by hand.
const (
	epoch      = 0           // Thu 1970-01-01 00:00:00, day 001
	nov2023    = 1700000000  // Tue 2023-11-14 22:13:20, day 318
	feb2009    = 1234567890  // Fri 2009-02-13 23:31:30, day 044, ISO week 2009-W07
	leapDay    = 951782400   // Tue 2000-02-29 00:00:00, day 060
	lastOf2024 = 1735603200  // Tue 2024-12-31 00:00:00, day 366, ISO week 2025-W01
	jan1969    = -31536000   // Wed 1969-01-01 00:00:00, day 001 (1969 has 365 days)
	lastSecond = -1          // Wed 1969-12-31 23:59:59, day 365
	maxNsec    = 999_999_999 // the largest valid nanosecond value
)

func TestAppend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		sec     int64
		nsec    uint32
		want    string
	}{
		{"default format", "%Y-%m-%dT%H:%M:%S", nov2023, 0, "2023-11-14T22:13:20"},
		{"empty pattern", "", nov2023, 0, ""},
		{"literal only", "no verbs here", nov2023, 0, "no verbs here"},
		{"milliseconds", "%Y-%m-%dT%H:%M:%S.%3NZ", nov2023, 123_456_789, "2023-11-14T22:13:20.123Z"},
		{"milliseconds of zero", "%3N", nov2023, 0, "000"},
		{"milliseconds padded", "%3N", nov2023, 1_000_000, "001"},
		{"milliseconds truncated", "%3N", nov2023, 999_999, "000"},
		{"milliseconds max", "%3N", nov2023, maxNsec, "999"},
		{"nanoseconds %9N", "%9N", nov2023, 5, "000000005"},
		{"nanoseconds %L", "%L", nov2023, 5, "000000005"},
		{"nanoseconds of zero", "%S.%9N", nov2023, 0, "20.000000000"},
		{"nanoseconds max", "%S.%L", nov2023, maxNsec, "20.999999999"},
		{"sub-second verbs adjacent", "%3N%9N%L", nov2023, 12_345_678, "012012345678012345678"},
		{"nsec carries into seconds", "%S.%3N", epoch, 1_500_000_000, "01.500"},
		{"percent", "%%", nov2023, 0, "%"},
		{"percent in text", "100%% at %H", nov2023, 0, "100% at 22"},
		{"percent before 3N", "%%3N", nov2023, 0, "%3N"},
		{"percent before L", "%%L", nov2023, 0, "%L"},
		{"percent then L", "%%%L", nov2023, 7, "%000000007"},
		{"epoch", "%a %A %b %B %e %Y %Z %z", epoch, 0, "Thu Thursday Jan January  1 1970 UTC +0000"},
		{"last second before epoch", "%Y-%m-%d %H:%M:%S.%9N", lastSecond, maxNsec, "1969-12-31 23:59:59.999999999"},
		{"last second before epoch, ms", "%F %T.%3N %j %a", lastSecond, 0, "1969-12-31 23:59:59.000 365 Wed"},
		{"1969", "%a %A %b %B %d %e %j %y %C %G %V", jan1969, 0, "Wed Wednesday Jan January 01  1 001 69 19 1969 01"},
		{"leap day", "%F %a %j %U %W %V", leapDay, 0, "2000-02-29 Tue 060 09 09 09"},
		{"day 366 in ISO week of next year", "%j %G-W%V-%u %g %U %W", lastOf2024, 0, "366 2025-W01-2 25 52 53"},
		{"%c", "%c", feb2009, 0, "Fri Feb 13 23:31:30 2009"},
		{"%D %F %T %R", "%D %F %T %R", feb2009, 0, "02/13/09 2009-02-13 23:31:30 23:31"},
		{"12-hour clock", "%r|%I|%l|%k|%p", feb2009, 0, "11:31:30 PM|11|11|23|PM"},
		{"12-hour clock, morning", "%r|%I|%l|%k|%p", epoch, 0, "12:00:00 AM|12|12| 0|AM"},
		{"weeks and weekdays", "%j %U %W %V %G %g %u %w", feb2009, 0, "044 06 06 07 2009 09 5 5"},
		{"%v %x %X %h %C", "%v %x %X %h %C", feb2009, 0, "13-Feb-2009 02/13/09 23:31:30 Feb 20"},
		{"newline and tab", "%H%n%M%t%S", feb2009, 0, "23\n31\t30"},
		{"no-padding flags", "%-d/%-m/%y %-H:%M %-j %#e %-k", epoch, 0, "1/1/70 0:00 1 1 0"},
		{"no-padding flag keeps %z sign", "%-z", epoch, 0, "+0"},
		{"no-padding on a name", "%-a %-%", epoch, 0, "Thu %"},
		{"seconds since the epoch", "%s", nov2023, 999, "1700000000"},
		{"negative seconds since the epoch", "%s", lastSecond, 0, "-1"},
		{"Go layout words stay literal", "Mon Jan PM pm 2006 MST 15 %Y", epoch, 0, "Mon Jan PM pm 2006 MST 15 1970"},
		{"non-ASCII literal", "日付 %Y年", nov2023, 0, "日付 2023年"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Compile(tt.pattern)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.pattern, err)
			}
			if got := string(f.Append(nil, tt.sec, tt.nsec)); got != tt.want {
				t.Errorf("Append(%q, %d, %d) = %q, want %q", tt.pattern, tt.sec, tt.nsec, got, tt.want)
			}
			// Append appends: what is already in dst stays.
			if got := string(f.Append([]byte("prefix "), tt.sec, tt.nsec)); got != "prefix "+tt.want {
				t.Errorf("Append to a prefix = %q, want %q", got, "prefix "+tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		want    error
		verb    string // quoted in the message
	}{
		{"unknown verb", "%Y-%Q", ErrUnknownVerb, `"%Q" (byte 3)`},
		{"unknown verb E", "%E", ErrUnknownVerb, `"%E"`},
		{"space after percent", "% d", ErrUnknownVerb, `"% "`},
		{"N without digits", "%N", ErrUnknownVerb, `"%N"`},
		{"6N", "%6N", ErrUnknownVerb, `"%6N"`},
		{"3 without N", "%3X", ErrUnknownVerb, `"%3X"`},
		{"3 at the end", "%S.%3", ErrUnknownVerb, `"%3"`},
		{"flag on L", "%-L", ErrUnknownVerb, `"%-L"`},
		{"flag on 3N", "%-3N", ErrUnknownVerb, `"%-3"`},
		{"flag on unknown", "%#Q", ErrUnknownVerb, `"%#Q"`},
		{"non-ASCII after percent", "%é", ErrUnknownVerb, "(byte 0)"},
		{"lone percent", "%", ErrTrailingPercent, "(byte 0)"},
		{"trailing percent", "%Y%", ErrTrailingPercent, "(byte 2)"},
		{"trailing percent after percent", "%%%", ErrTrailingPercent, "(byte 2)"},
		{"trailing flag", "%Y%-", ErrTrailingPercent, "(byte 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Compile(tt.pattern)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.pattern, f)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Compile(%q) error %q does not wrap %q", tt.pattern, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.verb) {
				t.Errorf("Compile(%q) error %q does not contain %s", tt.pattern, err, tt.verb)
			}
		})
	}
}

// lestrratPatterns use only verbs that lestrrat knows by default, so that
// Append must give exactly what lestrrat gives.
var lestrratPatterns = []string{
	"%Y-%m-%dT%H:%M:%S",
	"%A %a %B %b %C %c %D %d %e %F %G %g %H %h %I %j %k %l %M %m %n %p %R %r %S %T %t %U %u %V %v %W %w %X %x %Y %y %Z %z %%",
	"%-A %-a %-C %-d %-e %-G %-g %-H %-I %-j %-k %-l %-M %-m %-S %-U %-u %-V %-W %-w %-y %-Z %-z %-%",
	"%#d %#j %#e %#l",
	"literal Mon Jan 2006 %Y text",
}

// TestMatchesLestrrat checks Append against lestrrat's own formatting over
// a spread of times, negative years and far futures included.
func TestMatchesLestrrat(t *testing.T) {
	t.Parallel()
	secs := []int64{
		epoch, nov2023, feb2009, leapDay, lastOf2024, jan1969, lastSecond,
		-62135596800,  // 0001-01-01
		-62198755200,  // year -1
		-100000000000, // year -1199
		253402300799,  // 9999-12-31 23:59:59
		253402300800,  // 10000-01-01
		1 << 40,
	}
	for d := int64(0); d < 800; d++ { // every day of two years and a bit
		secs = append(secs, 1704067200+d*86400+d*37)
	}
	for _, p := range lestrratPatterns {
		f, err := Compile(p)
		if err != nil {
			t.Fatalf("Compile(%q): %v", p, err)
		}
		ref, err := strftime.New(p)
		if err != nil {
			t.Fatalf("strftime.New(%q): %v", p, err)
		}
		for _, sec := range secs {
			want := ref.FormatString(time.Unix(sec, 0).UTC())
			if got := string(f.Append(nil, sec, 0)); got != want {
				t.Errorf("Append(%q, %d) = %q, lestrrat gives %q", p, sec, got, want)
			}
		}
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	patterns := append([]string{
		"%Y-%m-%dT%H:%M:%S.%3NZ",
		"%s.%9N %L",
	}, lestrratPatterns...)
	for _, p := range patterns {
		f, err := Compile(p)
		if err != nil {
			t.Fatalf("Compile(%q): %v", p, err)
		}
		buf := make([]byte, 0, 1024)
		allocs := testing.AllocsPerRun(100, func() {
			buf = f.Append(buf[:0], nov2023, 123_456_789)
		})
		if allocs != 0 {
			t.Errorf("Append(%q) allocates %v times per call, want 0", p, allocs)
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	t.Parallel()
	f, err := Compile("%Y-%m-%dT%H:%M:%S.%3N %-d")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range 1000 {
				sec := int64(nov2023 + g*1000 + i)
				buf = f.Append(buf[:0], sec, 0)
				want := time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05.000 2")
				if string(buf) != want {
					t.Errorf("Append(%d) = %q, want %q", sec, buf, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPattern(t *testing.T) {
	t.Parallel()
	const p = "%Y %3N"
	f, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Pattern() != p {
		t.Errorf("Pattern() = %q, want %q", f.Pattern(), p)
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, bm := range []struct{ name, pattern string }{
		{"default", "%Y-%m-%dT%H:%M:%S"},
		{"milliseconds", "%Y-%m-%dT%H:%M:%S.%3NZ"},
		{"nanoseconds", "%Y-%m-%dT%H:%M:%S.%L"},
		{"many_verbs", "%a %b %e %j %G-W%V %-H:%M %Z"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			f, err := Compile(bm.pattern)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				buf = f.Append(buf[:0], nov2023+int64(i), uint32(i))
			}
		})
	}
}

func FuzzCompile(f *testing.F) {
	seeds := append([]string{
		"", "%", "%%", "%3N", "%9N", "%L", "%Q", "%-", "%-d", "%3", "%s", "%%%L", "%Y%",
	}, lestrratPatterns...)
	for _, s := range seeds {
		f.Add(s, int64(nov2023), uint32(123_456_789))
	}
	f.Add("%c", int64(-1<<62), uint32(4_000_000_000))
	f.Fuzz(func(t *testing.T, pattern string, sec int64, nsec uint32) {
		fm, err := Compile(pattern)
		// Without our own verbs, Compile accepts exactly what lestrrat does and
		// Append formats exactly as lestrrat does.
		ours := strings.ContainsAny(pattern, "NLs")
		ref, refErr := strftime.New(pattern)
		if !ours && (err == nil) != (refErr == nil) {
			t.Fatalf("Compile(%q) error %v, lestrrat error %v", pattern, err, refErr)
		}
		if err != nil {
			if !errors.Is(err, ErrUnknownVerb) && !errors.Is(err, ErrTrailingPercent) {
				t.Fatalf("Compile(%q) error %v wraps no sentinel", pattern, err)
			}
			return
		}
		got := fm.Append(nil, sec, nsec)
		if !ours {
			if want := ref.FormatString(time.Unix(sec, int64(nsec)).UTC()); string(got) != want {
				t.Fatalf("Append(%q, %d, %d) = %q, lestrrat gives %q", pattern, sec, nsec, got, want)
			}
		}
	})
}
