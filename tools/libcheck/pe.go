package main

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

var peMachines = map[string]uint16{
	"amd64": pe.IMAGE_FILE_MACHINE_AMD64,
	"arm64": pe.IMAGE_FILE_MACHINE_ARM64,
}

// inspectPE reads a Windows DLL: the names in its export directory and the DLLs it imports.
// debug/pe reads imports but not exports, so the export directory is parsed here.
func inspectPE(path, goarch string) (*Report, error) {
	want, ok := peMachines[goarch]
	if !ok {
		return nil, fmt.Errorf("libcheck: unsupported windows architecture %q", goarch)
	}
	f, err := pe.Open(path)
	if err != nil {
		return nil, fmt.Errorf("libcheck: %w", err)
	}
	defer f.Close()
	if f.Machine != want || f.Characteristics&pe.IMAGE_FILE_DLL == 0 {
		return nil, fmt.Errorf("libcheck: machine %#x, characteristics %#x: want a DLL for machine %#x", f.Machine, f.Characteristics, want)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok || len(oh.DataDirectory) <= pe.IMAGE_DIRECTORY_ENTRY_EXPORT {
		return nil, fmt.Errorf("libcheck: no 64-bit optional header with an export directory")
	}
	names, err := peExportNames(f, oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_EXPORT])
	if err != nil {
		return nil, err
	}
	exported := map[string]bool{}
	for _, n := range names {
		exported[n] = true
	}
	r := &Report{Format: "PE"}
	r.Exports, r.Missing = requiredExports(exported)

	syms, err := f.ImportedSymbols() // "name:DLL"
	if err != nil {
		return nil, fmt.Errorf("libcheck: imported symbols: %w", err)
	}
	for _, s := range syms {
		_, dll, _ := strings.Cut(s, ":")
		if dll != "" && !slices.Contains(r.Imports, dll) {
			r.Imports = append(r.Imports, dll)
		}
	}
	slices.Sort(r.Imports)
	for _, dll := range r.Imports {
		l := strings.ToLower(dll)
		if strings.HasPrefix(l, "libgcc") || strings.HasPrefix(l, "libwinpthread") || strings.HasPrefix(l, "libstdc++") {
			r.MinGWImports = append(r.MinGWImports, dll)
		}
	}
	return r, nil
}

// peExportNames returns the names in the export directory dir (IMAGE_EXPORT_DIRECTORY).
func peExportNames(f *pe.File, dir pe.DataDirectory) ([]string, error) {
	if dir.VirtualAddress == 0 || dir.Size == 0 {
		return nil, nil
	}
	// IMAGE_EXPORT_DIRECTORY: NumberOfNames at offset 24, AddressOfNames (an array of name RVAs) at 32.
	hdr, err := peRead(f, dir.VirtualAddress, 40)
	if err != nil {
		return nil, fmt.Errorf("libcheck: export directory: %w", err)
	}
	n := binary.LittleEndian.Uint32(hdr[24:])
	namesRVA := binary.LittleEndian.Uint32(hdr[32:])
	if n > 1<<16 {
		return nil, fmt.Errorf("libcheck: export directory: %d names", n)
	}
	rvas, err := peRead(f, namesRVA, 4*n)
	if err != nil {
		return nil, fmt.Errorf("libcheck: export names: %w", err)
	}
	names := make([]string, 0, n)
	for i := range n {
		rva := binary.LittleEndian.Uint32(rvas[4*i:])
		name, err := peString(f, rva)
		if err != nil {
			return nil, fmt.Errorf("libcheck: export name %d: %w", i, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// peSection returns the section holding the relative virtual address rva, or nil.
func peSection(f *pe.File, rva uint32) *pe.Section {
	for _, s := range f.Sections {
		if rva >= s.VirtualAddress && rva < s.VirtualAddress+max(s.VirtualSize, s.Size) {
			return s
		}
	}
	return nil
}

// peString reads the NUL-terminated string at the relative virtual address rva.
func peString(f *pe.File, rva uint32) (string, error) {
	s := peSection(f, rva)
	if s == nil {
		return "", fmt.Errorf("address %#x is in no section", rva)
	}
	data, err := s.Data()
	if err != nil {
		return "", err
	}
	if off := rva - s.VirtualAddress; off < uint32(len(data)) {
		if str, _, ok := bytes.Cut(data[off:], []byte{0}); ok {
			return string(str), nil
		}
	}
	return "", fmt.Errorf("no string at %#x in section %s", rva, s.Name)
}

// peRead reads n bytes at the relative virtual address rva, all in one section.
func peRead(f *pe.File, rva, n uint32) ([]byte, error) {
	s := peSection(f, rva)
	if s == nil {
		return nil, fmt.Errorf("address %#x is in no section", rva)
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	off := rva - s.VirtualAddress
	if uint64(off)+uint64(n) > uint64(len(data)) {
		return nil, fmt.Errorf("%d bytes at %#x run past section %s", n, rva, s.Name)
	}
	return data[off : off+n], nil
}
