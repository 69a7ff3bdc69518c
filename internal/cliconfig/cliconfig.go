// Package cliconfig layers a command's settings: command-line flags over
// BRAINY_* environment variables over a YAML config file over the flag
// defaults. Every setting is a flag; the environment variable and the file
// key are derived from the flag's name (--cache-size ↔ BRAINY_CACHE_SIZE ↔
// cache-size: in the file), so the three sources can never drift apart.
package cliconfig

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvName returns the environment variable for a flag name.
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Source says where a setting's value came from.
type Source string

// Sources.
const (
	FromFlag    Source = "flag"
	FromEnv     Source = "env"
	FromFile    Source = "file"
	FromDefault Source = "default"
)

// Parse parses args into fs, then fills every flag not given on the command
// line from the environment (prefix + NAME) and then from the YAML file
// named by the flag configFlag (itself settable by flag or environment).
// It returns where each flag's value came from. Unknown keys in the file
// and unparsable values are errors that name their source.
func Parse(fs *flag.FlagSet, args []string, prefix, configFlag string, getenv func(string) string) (map[string]Source, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (settings are flags: --name value)", fs.Arg(0))
	}
	src := map[string]Source{}
	fs.VisitAll(func(f *flag.Flag) { src[f.Name] = FromDefault })
	fs.Visit(func(f *flag.Flag) { src[f.Name] = FromFlag })

	var errs []error
	set := func(name, value string, from Source, where string) {
		if err := fs.Set(name, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q for --%s: %v", where, value, name, err))
			return
		}
		src[name] = from
	}
	fs.VisitAll(func(f *flag.Flag) {
		if src[f.Name] != FromDefault {
			return
		}
		env := EnvName(prefix, f.Name)
		if v, ok := lookup(getenv, env); ok {
			set(f.Name, v, FromEnv, env)
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	path := ""
	if f := fs.Lookup(configFlag); f != nil {
		path = f.Value.String()
	}
	if path == "" {
		return src, nil
	}
	values, err := readFile(path)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		name := strings.ReplaceAll(key, "_", "-")
		if fs.Lookup(name) == nil || name == configFlag {
			errs = append(errs, fmt.Errorf("%s: unknown setting %q", path, key))
			continue
		}
		if src[name] != FromDefault {
			continue // flags and environment win over the file
		}
		set(name, values[key], FromFile, path)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return src, nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// readFile reads a YAML map of setting → scalar (lists become
// comma-separated values; a map one level deep names settings by prefix).
func readFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("config file %s: larger than 1 MiB", path)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case nil:
			out[k] = ""
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		case map[string]any:
			// One level of nesting names settings by prefix:
			// storage: {hot: DIR, warm: URL} is storage-hot and storage-warm.
			for k2, v2 := range v {
				switch v2.(type) {
				case map[string]any, []any:
					return nil, fmt.Errorf("config file %s: setting %s.%s must be a scalar", path, k, k2)
				case nil:
					out[k+"-"+k2] = ""
				default:
					out[k+"-"+k2] = fmt.Sprint(v2)
				}
			}
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// Usage writes a help text listing every flag with its default and its
// environment variable.
func Usage(w io.Writer, fs *flag.FlagSet, prefix, synopsis string) {
	fmt.Fprintf(w, "%s\n\nSettings (flag > environment > --config file > default):\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n      %s\n", strings.ReplaceAll(usage, "\n", "\n      "))
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "      default: %s   env: %s\n", def, EnvName(prefix, f.Name))
	})
}

// List is a flag.Value holding comma-separated strings (--peers a,b): each
// Set replaces the whole list, so an environment variable or file value
// overrides the default rather than adding to it. Blank entries are
// dropped.
type List []string

// Set implements flag.Value.
func (l *List) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l = append(*l, f)
		}
	}
	return nil
}

// String implements flag.Value.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}
