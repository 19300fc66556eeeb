package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

var elfMachines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// inspectELF reads a Linux shared library: its exports from the dynamic symbol table (which
// `-ldflags -s` keeps), and the glibc versions of the symbols it imports.
func inspectELF(path, goarch string) (*Report, error) {
	want, ok := elfMachines[goarch]
	if !ok {
		return nil, fmt.Errorf("libcheck: unsupported linux architecture %q", goarch)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("libcheck: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN || f.Machine != want {
		return nil, fmt.Errorf("libcheck: %s %s, want a shared library (ET_DYN) for %s", f.Type, f.Machine, want)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("libcheck: dynamic symbols: %w", err)
	}
	defined := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC && elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
			defined[s.Name] = true
		}
	}
	r := &Report{Format: "ELF"}
	r.Exports, r.Missing = requiredExports(defined)
	if r.Needed, err = f.ImportedLibraries(); err != nil {
		return nil, fmt.Errorf("libcheck: needed libraries: %w", err)
	}

	imported, err := f.ImportedSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("libcheck: imported symbols: %w", err)
	}
	var newest []int
	for _, s := range imported {
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if !ok {
			continue
		}
		parsed, err := parseVersion(v)
		if err != nil {
			continue // GLIBC_PRIVATE and the like: not a release
		}
		switch c := compareVersions(parsed, newest); {
		case c > 0:
			newest, r.Glibc, r.GlibcSymbols = parsed, v, []string{s.Name}
		case c == 0 && !slices.Contains(r.GlibcSymbols, s.Name):
			r.GlibcSymbols = append(r.GlibcSymbols, s.Name)
		}
	}
	slices.Sort(r.GlibcSymbols)
	return r, nil
}

// parseVersion parses a dotted version such as 2.34 or 2.2.5.
func parseVersion(s string) ([]int, error) {
	var v []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("version %q: want numbers separated by dots", s)
		}
		v = append(v, n)
	}
	return v, nil
}

// compareVersions compares dotted versions part by part; a missing part counts as 0.
func compareVersions(a, b []int) int {
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
