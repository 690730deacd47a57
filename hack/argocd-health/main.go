// Command argocd-health runs Argo CD resource health checks the way Argo CD does: each
// <group>/<Kind>/health.lua under a resource_customizations folder, in gopher-lua (Lua 5.1)
// with only the libraries Argo CD opens, against every case of the folder's health_test.yaml
// (Argo CD's own test format: healthStatus {status, message} and an inputPath in testdata/).
//
// Usage: argocd-health DIR. Prints one line per case; exits 1 when any case differs.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testCase struct {
	HealthStatus healthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

// Argo CD accepts only these; anything else becomes Unknown.
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

// toLua converts a decoded JSON value into Lua values as Argo CD does: objects to hash
// tables, arrays to sequences (1-based), numbers to LNumber, null to nil.
func toLua(state *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		table := state.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]interface{}:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	}
	return lua.LNil
}

// run evaluates the script against obj with Argo CD's library set: package, base, table
// (and a restricted os, which these checks do not use, so it is left out here).
func run(script string, obj map[string]interface{}) (healthStatus, error) {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, err
		}
	}
	state.SetGlobal("obj", toLua(state, obj))
	if err := state.DoString(script); err != nil {
		return healthStatus{}, err
	}
	returned, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", state.Get(-1).Type())
	}
	result := healthStatus{
		Status:  lua.LVAsString(returned.RawGetString("status")),
		Message: lua.LVAsString(returned.RawGetString("message")),
	}
	if !validStatus[result.Status] {
		return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return result, nil
}

func check(dir string) (int, error) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return 0, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return 0, err
	}
	var tests testFile
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		return 0, fmt.Errorf("%s/health_test.yaml: %w", dir, err)
	}
	if len(tests.Tests) == 0 {
		return 0, fmt.Errorf("%s/health_test.yaml has no tests", dir)
	}
	failures := 0
	for _, test := range tests.Tests {
		input, err := os.ReadFile(filepath.Join(dir, test.InputPath))
		if err != nil {
			return 0, err
		}
		var obj map[string]interface{}
		if err := yaml.Unmarshal(input, &obj); err != nil {
			return 0, fmt.Errorf("%s: %w", test.InputPath, err)
		}
		got, err := run(string(script), obj)
		if err != nil {
			return 0, fmt.Errorf("%s with %s: %w", dir, test.InputPath, err)
		}
		if got != test.HealthStatus {
			failures++
			fmt.Printf("FAIL %s %s: got %s %q, want %s %q\n", dir, test.InputPath, got.Status, got.Message, test.HealthStatus.Status, test.HealthStatus.Message)
		} else {
			fmt.Printf("ok   %s %s: %s\n", dir, test.InputPath, got.Status)
		}
	}
	return failures, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health RESOURCE_CUSTOMIZATIONS_DIR")
		os.Exit(2)
	}
	scripts, err := filepath.Glob(filepath.Join(os.Args[1], "*", "*", "health.lua"))
	if err != nil || len(scripts) == 0 {
		fmt.Fprintf(os.Stderr, "no <group>/<Kind>/health.lua under %s\n", os.Args[1])
		os.Exit(2)
	}
	sort.Strings(scripts)
	failures := 0
	for _, script := range scripts {
		failed, err := check(filepath.Dir(script))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		failures += failed
	}
	if failures > 0 {
		os.Exit(1)
	}
}
