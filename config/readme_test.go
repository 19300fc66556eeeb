package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryKey keeps the README's key table and Keys in step:
// a key the plugin accepts but the README does not document, or the reverse,
// fails the build.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Configuration keys\n")
	if !ok {
		t.Fatal(`README.md has no "## Configuration keys" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	want := slices.Sorted(slices.Values(Keys))
	got := slices.Sorted(slices.Values(documented))
	if !slices.Equal(got, want) {
		t.Errorf("README documents keys %v\nconfig.Keys is        %v", got, want)
	}
}
