package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The image cannot be built without a registry; TestDockerfile checks statically what a build
// would fail on, or what would make the image not load the plugin, for each platform it is built for.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("the Dockerfile is checked on the build machine (it runs make), not on Windows")
	}
	lines := dockerfileInstructions(t, "Dockerfile")
	lib := pluginName + ".so"
	imageLib := "/fluent-bit/" + lib

	type stage struct {
		from   string
		args   map[string]bool // ARGs declared in the stage
		runs   []string
		copies [][]string
		cmd    []string
	}
	globalArgs := map[string]string{}
	var stages []*stage
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		var cur *stage
		if len(stages) > 0 {
			cur = stages[len(stages)-1]
		}
		switch strings.ToUpper(instr) {
		case "ARG":
			for _, a := range strings.Fields(rest) {
				k, v, _ := strings.Cut(a, "=")
				if cur == nil {
					globalArgs[k] = v
				} else {
					cur.args[k] = true
				}
			}
		case "FROM":
			stages = append(stages, &stage{from: rest, args: map[string]bool{}})
		case "RUN":
			cur.runs = append(cur.runs, rest)
		case "COPY":
			cur.copies = append(cur.copies, strings.Fields(rest))
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cur.cmd); err != nil {
				t.Errorf("CMD is not in exec form (no shell in the image is needed then): %v", err)
			}
		}
	}
	if globalArgs["GO_VERSION"] == "" {
		t.Error("no ARG GO_VERSION with a default")
	}
	if !strings.HasPrefix(globalArgs["BASE_IMAGE"], "public.ecr.aws/aws-observability/aws-for-fluent-bit") {
		t.Errorf("ARG BASE_IMAGE = %q, want the aws-for-fluent-bit image", globalArgs["BASE_IMAGE"])
	}
	// Pinned, and an Amazon Linux 2023 tag: the library needs glibc 2.34.
	if tag := globalArgs["BASE_TAG"]; !regexp.MustCompile(`^3\.\d+\.\d+`).MatchString(tag) {
		t.Errorf("ARG BASE_TAG = %q, want a pinned 3.x version", tag)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a builder stage and the final stage", len(stages))
	}
	build, final := stages[0], stages[1]

	// The builder runs on the build machine's platform and cross-compiles for the target one.
	if !regexp.MustCompile(`^--platform=\$\{?BUILDPLATFORM\}? golang:\$\{GO_VERSION\}-\S+ AS build$`).MatchString(build.from) {
		t.Errorf("FROM %s: want --platform=$BUILDPLATFORM golang:${GO_VERSION}-... AS build", build.from)
	}
	for _, st := range []*stage{build, final} {
		for _, a := range []string{"TARGETOS", "TARGETARCH"} {
			if !st.args[a] {
				t.Errorf("stage FROM %s does not declare ARG %s", st.from, a)
			}
		}
	}
	if !strings.HasPrefix(final.from, "${BASE_IMAGE}:${BASE_TAG}") {
		t.Errorf("final stage FROM %s, want ${BASE_IMAGE}:${BASE_TAG}", final.from)
	}
	var makeTarget string
	for _, r := range build.runs {
		if m := regexp.MustCompile(`\bmake (\S+)`).FindStringSubmatch(r); m != nil {
			makeTarget = m[1]
		}
	}

	// What make dist writes, by platform directory (linux-arm64: dist/linux-arm64/<lib>.so).
	distLibs := map[string]string{}
	for _, f := range strings.Fields(runMake(t, "-s", "dist-names")) {
		distLibs[path.Base(path.Dir(f))] = f
	}

	ignored := dockerignore(t)
	for _, platform := range []string{"linux/amd64", "linux/arm64"} {
		goos, goarch, _ := strings.Cut(platform, "/")
		expand := strings.NewReplacer("${TARGETOS}", goos, "$TARGETOS", goos, "${TARGETARCH}", goarch, "$TARGETARCH", goarch).Replace
		want := distLibs[goos+"-"+goarch]
		if want == "" || path.Base(want) != lib {
			t.Fatalf("make dist-names = %v: no %s for %s", distLibs, lib, platform)
		}
		// The builder's make target is make dist's for this platform, and builds that file.
		if target := expand(makeTarget); target != "dist-"+goos+"-"+goarch {
			t.Errorf("%s: the builder runs make %q, want dist-%s-%s", platform, target, goos, goarch)
		} else if plan := runMake(t, "-n", target); !strings.Contains(plan, want) {
			t.Errorf("%s: make -n %s does not build or check %s:\n%s", platform, target, want, plan)
		}

		dest := map[string]string{} // destination in the image: source in the repo, or "build:" + stage path
		for _, c := range final.copies {
			from := ""
			var srcs []string
			for _, f := range c {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(f, "--") {
					srcs = append(srcs, expand(f))
				}
			}
			if len(srcs) < 2 {
				t.Errorf("COPY %v: want a source and a destination", c)
				continue
			}
			to := srcs[len(srcs)-1]
			for _, src := range srcs[:len(srcs)-1] {
				if from != "" {
					if from != "build" || src != "/src/"+want {
						t.Errorf("%s: COPY --from=%s %s: the builder stage produces only /src/%s", platform, from, src, want)
					}
					dest[to] = "build:" + src
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
		if dest[imageLib] != "build:/src/"+want {
			t.Errorf("%s: the image has no %s from the builder's %s; copies: %v", platform, imageLib, want, dest)
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
	}

	// Fluent Bit with this plugin and no other: one -e, the library copied from the builder.
	var loads []string
	for i, a := range final.cmd {
		if a == "-e" && i+1 < len(final.cmd) {
			loads = append(loads, final.cmd[i+1])
		}
	}
	if len(final.cmd) == 0 || final.cmd[0] != "/fluent-bit/bin/fluent-bit" || !slices.Equal(loads, []string{imageLib}) ||
		!slices.Contains(final.cmd, "/fluent-bit/etc/fluent-bit.conf") {
		t.Errorf("CMD %q: want /fluent-bit/bin/fluent-bit loading only -e %s, with the image's configuration", final.cmd, imageLib)
	}
}

// runMake runs make with args in the repository and returns its output.
func runMake(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "make", append([]string{"--no-print-directory"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
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
