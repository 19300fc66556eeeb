package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The image cannot be built without a registry; TestDockerfile checks statically what a build
// would fail on, or what would make the image not load the plugin.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	lines := dockerfileInstructions(t, "Dockerfile")
	lib := pluginName + ".so"
	imageLib := "/fluent-bit/" + lib

	args := map[string]string{}
	var copies [][]string
	var cmd []string
	runsMake, stages := false, 0
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			args[k] = v
		case "FROM":
			stages++
		case "RUN":
			runsMake = runsMake || regexp.MustCompile(`\bmake build\b`).MatchString(rest)
		case "COPY":
			copies = append(copies, strings.Fields(rest))
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Errorf("CMD is not in exec form (no shell in the image is needed then): %v", err)
			}
		}
	}
	if args["GO_VERSION"] == "" {
		t.Error("no ARG GO_VERSION with a default")
	}
	if !strings.HasPrefix(args["BASE_IMAGE"], "public.ecr.aws/aws-observability/aws-for-fluent-bit") {
		t.Errorf("ARG BASE_IMAGE = %q, want the aws-for-fluent-bit image", args["BASE_IMAGE"])
	}
	// Pinned, and an Amazon Linux 2023 tag: the library needs glibc 2.34.
	if tag := args["BASE_TAG"]; !regexp.MustCompile(`^3\.\d+\.\d+`).MatchString(tag) {
		t.Errorf("ARG BASE_TAG = %q, want a pinned 3.x version", tag)
	}
	if stages != 2 || !runsMake {
		t.Errorf("%d stages, runs make build: %v; want a builder stage running make build and the final stage", stages, runsMake)
	}

	// The Makefile builds build/<pluginName>.so.
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^PLUGIN_NAME\s*\?=\s*`+pluginName+`$`).Match(mk) ||
		!regexp.MustCompile(`(?m)^BUILD_DIR\s*\?=\s*build$`).Match(mk) {
		t.Errorf("the Makefile does not build build/%s", lib)
	}

	ignored := dockerignore(t)
	dest := map[string]string{} // destination in the image: source in the repo, or "build:" + stage path
	for _, c := range copies {
		from := ""
		var srcs []string
		for _, f := range c {
			if v, ok := strings.CutPrefix(f, "--from="); ok {
				from = v
			} else if !strings.HasPrefix(f, "--") {
				srcs = append(srcs, f)
			}
		}
		if len(srcs) < 2 {
			t.Errorf("COPY %v: want a source and a destination", c)
			continue
		}
		to := srcs[len(srcs)-1]
		for _, src := range srcs[:len(srcs)-1] {
			if from != "" {
				if want := "/src/build/" + lib; from != "build" || src != want {
					t.Errorf("COPY --from=%s %s: the builder stage produces only %s", from, src, want)
				}
				dest[to] = "build:" + src
				continue
			}
			if src == "." || src == "./" {
				continue
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("COPY source %q is not in the repository: %v", src, err)
			}
			for _, ig := range ignored {
				if src == ig || strings.HasPrefix(src, strings.TrimSuffix(ig, "/")+"/") {
					t.Errorf("COPY source %q is excluded by .dockerignore (%q)", src, ig)
				}
			}
			dest[to] = src
		}
	}
	if dest[imageLib] != "build:/src/build/"+lib {
		t.Errorf("the image has no %s from the builder stage; copies: %v", imageLib, dest)
	}
	plugins := dest["/fluent-bit/etc/plugins.conf"]
	if plugins == "" {
		t.Fatalf("the image has no /fluent-bit/etc/plugins.conf; copies: %v", dest)
	}
	pf, err := os.ReadFile(plugins)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, l := range strings.Split(string(pf), "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.EqualFold(f[0], "path") {
			paths = append(paths, f[1])
		}
	}
	if !slices.Equal(paths, []string{imageLib}) || !strings.Contains(string(pf), "[PLUGINS]") {
		t.Errorf("%s loads %v, want one [PLUGINS] Path %s", plugins, paths, imageLib)
	}
	if i := slices.Index(cmd, imageLib); i < 1 || cmd[i-1] != "-e" || cmd[0] != "/fluent-bit/bin/fluent-bit" ||
		!slices.Contains(cmd, "/fluent-bit/etc/fluent-bit.conf") {
		t.Errorf("CMD %q does not run /fluent-bit/bin/fluent-bit with -e %s and the image's configuration", cmd, imageLib)
	}
}

// dockerfileInstructions returns the Dockerfile's instructions, continuation lines joined,
// comments and blank lines dropped.
func dockerfileInstructions(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	cur := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			cur += c
			continue
		}
		out = append(out, strings.Join(strings.Fields(cur+l), " "))
		cur = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerignore returns the patterns of .dockerignore (plain paths only are used here).
func dockerignore(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, path.Clean(l))
		}
	}
	return out
}
