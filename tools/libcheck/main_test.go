package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// exportsSource defines the exports named, each a function that does nothing, and one that starts a
// thread (so that the library imports pthread_create, from glibc or from MinGW's winpthread).
func exportsSource(names []string) string {
	var b strings.Builder
	b.WriteString("#include <pthread.h>\nstatic void *run(void *a) { return a; }\n")
	b.WriteString("int start(void *d) { pthread_t t; return pthread_create(&t, 0, run, d); }\n")
	for _, n := range names {
		b.WriteString("int " + n + "(void *p) { return p != 0; }\n")
	}
	return b.String()
}

// buildLib compiles src with cc into dir/<platform dir>/lib<ext> and returns its path; the test
// skips, saying so, when cc is not installed.
func buildLib(t *testing.T, cc, platformDir, src string) string {
	t.Helper()
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("%s not installed: this check is not run", cc)
	}
	dir := filepath.Join(t.TempDir(), platformDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(dir, "lib.c")
	if err := os.WriteFile(c, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	ext := ".so"
	if strings.HasPrefix(platformDir, "windows") {
		ext = ".dll"
	}
	out := filepath.Join(dir, "lib"+ext)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, cc, "-shared", "-fPIC", "-o", out, c, "-pthread").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, b)
	}
	return out
}

func TestInspect(t *testing.T) {
	t.Parallel()
	all := Exports
	withoutExitCtx := slices.DeleteFunc(slices.Clone(Exports), func(s string) bool { return s == "FLBPluginExitCtx" })
	tests := []struct {
		name, cc, platform string
		exports            []string
		wantMissing        []string
		wantImport         string // a DLL the PE imports
		wantMinGW          bool   // the PE imports a MinGW runtime DLL (winpthread here)
	}{
		{name: "linux amd64", cc: "x86_64-linux-gnu-gcc", platform: "linux-amd64", exports: all},
		{name: "linux arm64", cc: "aarch64-linux-gnu-gcc", platform: "linux-arm64", exports: all},
		{name: "linux missing export", cc: "x86_64-linux-gnu-gcc", platform: "linux-amd64", exports: withoutExitCtx,
			wantMissing: []string{"FLBPluginExitCtx"}},
		{name: "windows amd64", cc: "x86_64-w64-mingw32-gcc", platform: "windows-amd64", exports: all,
			wantImport: "KERNEL32.dll", wantMinGW: true},
		{name: "windows missing exports", cc: "x86_64-w64-mingw32-gcc", platform: "windows-amd64", exports: Exports[:2],
			wantMissing: Exports[2:], wantImport: "KERNEL32.dll", wantMinGW: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lib := buildLib(t, tt.cc, tt.platform, exportsSource(tt.exports))
			platform := strings.Replace(tt.platform, "-", "/", 1)
			r, err := Inspect(lib, platform)
			if err != nil {
				t.Fatal(err)
			}
			wantPresent := slices.DeleteFunc(slices.Clone(Exports), func(s string) bool { return slices.Contains(tt.wantMissing, s) })
			if !slices.Equal(r.Exports, wantPresent) || !slices.Equal(r.Missing, tt.wantMissing) {
				t.Errorf("exports %v, missing %v; want %v, %v", r.Exports, r.Missing, wantPresent, tt.wantMissing)
			}
			err = r.Check("")
			if wantErr := len(tt.wantMissing) > 0 || tt.wantMinGW; (err != nil) != wantErr {
				t.Errorf("Check = %v, want an error: %v", err, wantErr)
			}
			for _, m := range tt.wantMissing {
				if err == nil || !strings.Contains(err.Error(), m) {
					t.Errorf("Check = %v, want it to name %s", err, m)
				}
			}
			if r.Size <= 0 || r.Platform != platform {
				t.Errorf("size %d, platform %q", r.Size, r.Platform)
			}

			switch r.Format {
			case "ELF":
				// pthread_create has a GLIBC_ version on every glibc (2.34 and later, 2.2.5 or 2.17 before).
				if r.Glibc == "" || !slices.Contains(r.GlibcSymbols, "pthread_create") || !slices.Contains(r.Needed, "libc.so.6") {
					t.Fatalf("glibc %q for %v, needed %v; want a version for pthread_create and libc.so.6", r.Glibc, r.GlibcSymbols, r.Needed)
				}
				// Every GLIBC_ version of a symbol is newer than 2.0 (the oldest, GLIBC_2.0, is i386's).
				if err := r.Check("2.0"); err == nil || !strings.Contains(err.Error(), "needs glibc "+r.Glibc) {
					t.Errorf("Check(2.0) = %v, want it to say the library needs glibc %s", err, r.Glibc)
				}
				if err := r.Check(r.Glibc); len(tt.wantMissing) == 0 && err != nil {
					t.Errorf("Check(%s) = %v for a library that needs exactly that", r.Glibc, err)
				}
			case "PE":
				if !slices.Contains(r.Imports, tt.wantImport) || (len(r.MinGWImports) > 0) != tt.wantMinGW {
					t.Errorf("imports %v, MinGW's %v; want %s among them, MinGW's: %v", r.Imports, r.MinGWImports, tt.wantImport, tt.wantMinGW)
				}
			default:
				t.Errorf("format %q", r.Format)
			}
		})
	}
}

func TestInspectWrongPlatform(t *testing.T) {
	t.Parallel()
	lib := buildLib(t, "x86_64-linux-gnu-gcc", "linux-amd64", exportsSource(Exports))
	for _, platform := range []string{"linux/arm64", "windows/amd64", "darwin/arm64", "linux"} {
		if r, err := Inspect(lib, platform); err == nil {
			t.Errorf("Inspect(linux/amd64 library, %s) = %v, want an error", platform, r)
		}
	}
}

// TestCheckPlatformFromDirectory checks the command's loop: the platform comes from the library's
// directory, and one bad library fails the run while the others are still reported.
func TestCheckPlatformFromDirectory(t *testing.T) {
	t.Parallel()
	good := buildLib(t, "x86_64-linux-gnu-gcc", "linux-amd64", exportsSource(Exports))
	bad := buildLib(t, "x86_64-linux-gnu-gcc", "linux-arm64", exportsSource(Exports)) // an amd64 library in linux-arm64/
	var out strings.Builder
	if !check(&out, "", "", []string{good}) {
		t.Errorf("check(%s) failed:\n%s", good, out.String())
	}
	out.Reset()
	if check(&out, "", "", []string{bad, good}) {
		t.Errorf("check passed an amd64 library in linux-arm64/:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], bad+": FAIL: ") || !strings.Contains(lines[1], good+": ok: ELF linux/amd64") {
		t.Errorf("output:\n%s\nwant a FAIL line for %s and an ok line for %s", out.String(), bad, good)
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"2.34", "2.34", 0},
		{"2.34", "2.34.0", 0},
		{"2.2.5", "2.34", -1},
		{"2.35", "2.34", 1},
		{"2.3.2", "2.3", 1},
		{"3.0", "2.99", 1},
	}
	for _, tt := range tests {
		a, err := parseVersion(tt.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseVersion(tt.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := compareVersions(a, b); got != tt.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	for _, bad := range []string{"", "2.", "x.1", "2.-1", "PRIVATE"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) succeeded", bad)
		}
	}
}
