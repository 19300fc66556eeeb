// Package examples holds runnable Fluent Bit configurations; its test checks that each one
// parses and that every kinesis_streams_go output in it is one the plugin accepts.
package examples

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/config"
)

// pluginName is the output name the plugin registers (package main's default).
const pluginName = "kinesis_streams_go"

// fluentBitKeys are the [OUTPUT] keys Fluent Bit consumes itself (flb_output_set_property) and
// never passes to the plugin. host, port and ipv6 are left out on purpose: Fluent Bit takes them,
// but they mean nothing to this plugin (endpoint is its key), so an example using them is wrong.
var fluentBitKeys = []string{
	"name", "match", "match_regex", "alias", "log_level", "log_suppress_interval",
	"retry_limit", "workers", "storage.total_limit_size", "tls", "processors",
}

// fluentBitKeyPrefixes are families of keys Fluent Bit consumes: TLS and networking settings.
var fluentBitKeyPrefixes = []string{"tls.", "net."}

// output is one [OUTPUT] section or YAML pipeline output, keys in lower case.
type output struct {
	file string
	keys map[string]string
}

func TestExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*")
	if err != nil {
		t.Fatal(err)
	}
	var configs []string
	for _, f := range files {
		if ext := filepath.Ext(f); ext == ".conf" || ext == ".yaml" {
			configs = append(configs, f)
		}
	}
	if len(configs) == 0 {
		t.Fatal("no examples")
	}
	var all []output
	for _, f := range configs {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("# ")) {
				t.Errorf("%s does not start with a comment saying what it shows", f)
			}
			var outs []output
			if filepath.Ext(f) == ".yaml" {
				outs = parseYAML(t, f, b)
			} else {
				outs = parseClassic(t, f, b)
			}
			for _, o := range outs {
				checkOutput(t, o)
			}
			all = append(all, outs...)
		})
	}
	checkCoverage(t, all, configs)
}

// checkOutput fails on a key that is neither Fluent Bit's nor the plugin's, and runs the plugin's
// own parser on the plugin's keys.
func checkOutput(t *testing.T, o output) {
	t.Helper()
	plugin := config.MapGetter{}
	for k, v := range o.keys {
		switch {
		case isFluentBitKey(k):
		case slices.Contains(config.Keys, k):
			plugin[k] = v
		default:
			t.Errorf("%s: key %q is neither a Fluent Bit output key nor one of the plugin's %v", o.file, k, config.Keys)
		}
	}
	if _, err := config.Parse(plugin); err != nil {
		t.Errorf("%s: the plugin rejects the output: %v", o.file, err)
	}
	if o.keys["match"] == "" && o.keys["match_regex"] == "" {
		t.Errorf("%s: an output without match receives nothing", o.file)
	}
}

func isFluentBitKey(k string) bool {
	if slices.Contains(fluentBitKeys, k) {
		return true
	}
	for _, p := range fluentBitKeyPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// parseClassic reads Fluent Bit's classic format: [SECTION] headers, "Key Value" lines, comments,
// @SET and @INCLUDE (relative to the file), and returns the plugin's outputs. It checks that a
// plugins_file named in [SERVICE] exists and loads the plugin.
func parseClassic(t *testing.T, file string, b []byte) []output {
	t.Helper()
	var outs []output
	section := ""
	var cur map[string]string
	flush := func() {
		if section == "OUTPUT" && strings.EqualFold(cur["name"], pluginName) {
			outs = append(outs, output{file: file, keys: cur})
		}
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "@SET "):
			k, v, ok := strings.Cut(strings.TrimSpace(line[5:]), "=")
			if !ok {
				t.Errorf("%s:%d: @SET without =: %q", file, n, line)
			}
			vars[k] = v
		case strings.HasPrefix(line, "@INCLUDE "):
			inc := filepath.Join(filepath.Dir(file), strings.TrimSpace(line[9:]))
			ib, err := os.ReadFile(inc)
			if err != nil {
				t.Errorf("%s:%d: %v", file, n, err)
				continue
			}
			outs = append(outs, parseClassic(t, inc, ib)...)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			flush()
			section = strings.ToUpper(strings.TrimSpace(line[1 : len(line)-1]))
			cur = map[string]string{}
			if !slices.Contains([]string{"SERVICE", "INPUT", "FILTER", "OUTPUT", "PARSER", "MULTILINE_PARSER", "PLUGINS"}, section) {
				t.Errorf("%s:%d: unknown section %q", file, n, line)
			}
		default:
			if cur == nil {
				t.Errorf("%s:%d: %q is outside any section", file, n, line)
				continue
			}
			k, v, ok := strings.Cut(line, " ")
			v = strings.TrimSpace(v)
			if !ok || v == "" {
				t.Errorf("%s:%d: %q is not a Key Value line", file, n, line)
				continue
			}
			for name, val := range vars {
				v = strings.ReplaceAll(v, "${"+name+"}", val)
			}
			k = strings.ToLower(k)
			if _, dup := cur[k]; dup && section != "PLUGINS" {
				t.Errorf("%s:%d: key %q set twice in [%s]", file, n, k, section)
			}
			cur[k] = v
			if section == "SERVICE" && k == "plugins_file" {
				checkPluginsFile(t, filepath.Join(filepath.Dir(file), v))
			}
			if section == "PLUGINS" && k == "path" && filepath.Base(v) != pluginName+".so" {
				t.Errorf("%s:%d: [PLUGINS] Path %q is not the plugin's library %s.so", file, n, v, pluginName)
			}
		}
	}
	flush()
	return outs
}

func checkPluginsFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("plugins_file: %v", err)
		return
	}
	if !bytes.Contains(b, []byte("[PLUGINS]")) || !bytes.Contains(b, []byte(pluginName+".so")) {
		t.Errorf("plugins_file %s does not load %s.so", path, pluginName)
	}
}

// parseYAML reads Fluent Bit's YAML format and returns the plugin's pipeline outputs. It checks
// that the top-level sections are Fluent Bit's and that a plugins list names the library.
func parseYAML(t *testing.T, file string, b []byte) []output {
	t.Helper()
	var doc struct {
		Env      map[string]any   `yaml:"env"`
		Includes []string         `yaml:"includes"`
		Service  map[string]any   `yaml:"service"`
		Plugins  []string         `yaml:"plugins"`
		Parsers  []map[string]any `yaml:"parsers"`
		Pipeline struct {
			Inputs  []map[string]any `yaml:"inputs"`
			Filters []map[string]any `yaml:"filters"`
			Outputs []map[string]any `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // an unknown top-level or pipeline section is an error
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, p := range doc.Plugins {
		if filepath.Base(p) != pluginName+".so" {
			t.Errorf("%s: plugins entry %q is not the plugin's library %s.so", file, p, pluginName)
		}
	}
	var outs []output
	for _, o := range doc.Pipeline.Outputs {
		keys := map[string]string{}
		for k, v := range o {
			lk := strings.ToLower(k)
			if _, dup := keys[lk]; dup {
				t.Errorf("%s: key %q set twice", file, lk)
			}
			if lk != "processors" {
				keys[lk] = fmt.Sprint(v)
			} else {
				keys[lk] = "(processors)"
			}
		}
		if strings.EqualFold(keys["name"], pluginName) {
			outs = append(outs, output{file: file, keys: keys})
		}
	}
	return outs
}

// checkCoverage checks that the examples show every feature the README promises one for, in the
// classic format and, for the main ones, in YAML.
func checkCoverage(t *testing.T, outs []output, files []string) {
	t.Helper()
	has := func(what string, ok func(output) bool) {
		for _, o := range outs {
			if ok(o) {
				return
			}
		}
		t.Errorf("no example shows %s", what)
	}
	has("workers 2", func(o output) bool { return o.keys["workers"] == "2" })
	has("time_key with %3N", func(o output) bool {
		return o.keys["time_key"] != "" && strings.Contains(o.keys["time_key_format"], "%3N")
	})
	has("log_key log", func(o output) bool { return o.keys["log_key"] == "log" })
	has("a nested partition_key", func(o output) bool { return strings.Contains(o.keys["partition_key"], "->") })
	has("compression", func(o output) bool { return o.keys["compression"] != "" && o.keys["compression"] != "none" })
	has("aggregation", func(o output) bool { return o.keys["aggregation"] == "true" })
	has("role_arn with external_id", func(o output) bool { return o.keys["role_arn"] != "" && o.keys["external_id"] != "" })
	has("a local endpoint", func(o output) bool { return strings.Contains(o.keys["endpoint"], "127.0.0.1") })
	perFile := map[string]int{}
	for _, o := range outs {
		perFile[o.file]++
	}
	twoInstances := 0
	for _, n := range perFile {
		if n >= 2 {
			twoInstances++
		}
	}
	if twoInstances == 0 {
		t.Error("no example has two instances of the plugin")
	}
	for _, f := range []string{"minimal", "two-streams", "container-logs", "aggregation", "role-arn", "local-endpoint"} {
		for _, ext := range []string{".conf", ".yaml"} {
			if !slices.Contains(files, f+ext) {
				t.Errorf("no example %s%s", f, ext)
			}
		}
	}
}
