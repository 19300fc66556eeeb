// Command libcheck checks a built plugin library before it is shipped: that it is a shared library
// for the platform it is named for, that it exports every function Fluent Bit's Go proxy looks up,
// and what it needs from the system it is loaded on: for an ELF library the newest glibc symbol
// version it references (checked against a limit), for a Windows DLL the DLLs it imports (none of
// MinGW's runtime DLLs, which a Windows host does not have).
//
//	go run ./tools/libcheck -max-glibc 2.34 dist/linux-arm64/kinesis_streams_go.so
//
// The platform is that of the directory the library is in (<os>-<arch>, as make dist names them),
// unless -platform gives it. It prints one line per library and exits with status 1 when a library fails a check.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Exports are the functions Fluent Bit's Go proxy resolves in a Go output plugin (proxy/go/go.c):
// a library without one of them is not loaded, or not driven as the plugin expects.
var Exports = []string{
	"FLBPluginRegister",
	"FLBPluginInit",
	"FLBPluginFlushCtx",
	"FLBPluginExitCtx",
	"FLBPluginExit",
	"FLBPluginUnregister",
}

func main() {
	platform := flag.String("platform", "", "every library's target as GOOS/GOARCH, e.g. linux/arm64 (default: from each library's directory, e.g. linux-arm64)")
	maxGlibc := flag.String("max-glibc", "", "fail an ELF library that needs a newer glibc than this, e.g. 2.34")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: libcheck [-platform GOOS/GOARCH] [-max-glibc X.Y] library...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if !check(os.Stdout, *platform, *maxGlibc, flag.Args()) {
		os.Exit(1)
	}
}

// check checks every library in paths, for platform or that of its directory, writes one line for
// each to w, and reports whether all passed.
func check(w io.Writer, platform, maxGlibc string, paths []string) bool {
	ok := true
	for _, p := range paths {
		target := platform
		if target == "" {
			target = strings.Replace(filepath.Base(filepath.Dir(p)), "-", "/", 1)
		}
		r, err := Inspect(p, target)
		if err == nil {
			err = r.Check(maxGlibc)
		}
		if err != nil {
			fmt.Fprintf(w, "%s: FAIL: %v\n", p, err)
			ok = false
			continue
		}
		fmt.Fprintf(w, "%s: ok: %s\n", p, r)
	}
	return ok
}

// Report is what Inspect found in a library.
type Report struct {
	Platform string   // GOOS/GOARCH
	Format   string   // "ELF" or "PE"
	Exports  []string // the required exports present, in the order of Exports
	Missing  []string // the required exports absent
	Size     int64

	// ELF only: the newest GLIBC_ version referenced, and the symbols that reference it.
	Glibc        string
	GlibcSymbols []string
	Needed       []string // DT_NEEDED libraries

	// PE only: the DLLs imported, and those of them that are MinGW's runtime.
	Imports      []string
	MinGWImports []string
}

// Check reports an error when r misses an export, imports a MinGW runtime DLL, or needs a glibc
// newer than maxGlibc (when set).
func (r *Report) Check(maxGlibc string) error {
	var problems []string
	if len(r.Missing) > 0 {
		problems = append(problems, fmt.Sprintf("missing exports %s", strings.Join(r.Missing, ", ")))
	}
	if len(r.MinGWImports) > 0 {
		problems = append(problems, fmt.Sprintf("imports MinGW runtime DLLs %s, which Windows does not have", strings.Join(r.MinGWImports, ", ")))
	}
	if maxGlibc != "" && r.Format == "ELF" {
		max, err := parseVersion(maxGlibc)
		if err != nil {
			return fmt.Errorf("libcheck: invalid -max-glibc %q: %w", maxGlibc, err)
		}
		if r.Glibc != "" {
			if need, _ := parseVersion(r.Glibc); compareVersions(need, max) > 0 {
				problems = append(problems, fmt.Sprintf("needs glibc %s (%s), newer than %s", r.Glibc, strings.Join(r.GlibcSymbols, ", "), maxGlibc))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func (r *Report) String() string {
	s := fmt.Sprintf("%s %s, %d bytes, exports %s", r.Format, r.Platform, r.Size, strings.Join(r.Exports, " "))
	switch r.Format {
	case "ELF":
		glibc := "no versioned glibc symbol"
		if r.Glibc != "" {
			glibc = fmt.Sprintf("glibc >= %s (%s)", r.Glibc, strings.Join(r.GlibcSymbols, " "))
		}
		s += fmt.Sprintf("; needs %s, %s", strings.Join(r.Needed, " "), glibc)
	case "PE":
		s += fmt.Sprintf("; imports %s", strings.Join(r.Imports, " "))
	}
	return s
}

// Inspect reads the library at path, which must be a shared library for platform (GOOS/GOARCH).
func Inspect(path, platform string) (*Report, error) {
	goos, goarch, ok := strings.Cut(platform, "/")
	if !ok {
		return nil, fmt.Errorf("libcheck: invalid platform %q: want GOOS/GOARCH (or the library in a directory GOOS-GOARCH)", platform)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var r *Report
	switch goos {
	case "windows":
		r, err = inspectPE(path, goarch)
	case "linux":
		r, err = inspectELF(path, goarch)
	default:
		return nil, fmt.Errorf("libcheck: unsupported platform %q: want linux or windows", platform)
	}
	if err != nil {
		return nil, err
	}
	r.Platform, r.Size = platform, fi.Size()
	return r, nil
}

// requiredExports splits Exports into those in have and those missing.
func requiredExports(have map[string]bool) (present, missing []string) {
	for _, name := range Exports {
		if have[name] {
			present = append(present, name)
		} else {
			missing = append(missing, name)
		}
	}
	return present, missing
}
