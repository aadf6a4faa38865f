package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The environment hermodctl reads. They are not HERMOD_* names: those
// configure the services, and a service must not see a client's settings
// as its own.
const (
	EnvServer = "HERMODCTL_SERVER"
	EnvAPIKey = "HERMODCTL_API_KEY"
	EnvConfig = "HERMODCTL_CONFIG"
)

// DefaultServer is the API of `make run`.
const DefaultServer = "http://127.0.0.1:8080"

// fileConfig is the configuration file's content.
type fileConfig struct {
	Server string `json:"server"`
	APIKey string `json:"api_key"`
}

// settings are the resolved connection settings and where each came from.
type settings struct {
	Server, ServerFrom string
	APIKey, APIKeyFrom string
	// Warnings are problems worth telling but not fatal (a configuration
	// file others can read).
	Warnings []string
}

// configPath is the configuration file: --config, else HERMODCTL_CONFIG,
// else $XDG_CONFIG_HOME/hermod/hermodctl.json, else
// $HOME/.config/hermod/hermodctl.json. explicit says it was asked for (a
// missing file is then an error).
func configPath(flag string, getenv func(string) string) (path string, explicit bool) {
	if flag != "" {
		return flag, true
	}
	if v := getenv(EnvConfig); v != "" {
		return v, true
	}
	if v := getenv("XDG_CONFIG_HOME"); v != "" && filepath.IsAbs(v) {
		return filepath.Join(v, "hermod", "hermodctl.json"), false
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "hermod", "hermodctl.json"), false
	}
	return "", false
}

// readConfigFile reads the file at path; a missing file that was not asked
// for is an empty configuration.
func readConfigFile(path string, explicit bool) (fileConfig, []string, error) {
	var c fileConfig
	if path == "" {
		return c, nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return c, nil, nil
		}
		return c, nil, fmt.Errorf("configuration file: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, nil, fmt.Errorf("configuration file %s: %w", path, err)
	}
	var warns []string
	if fi, err := os.Stat(path); err == nil && c.APIKey != "" && fi.Mode().Perm()&0o077 != 0 {
		warns = append(warns, fmt.Sprintf("%s holds an API key and others can read it (mode %04o): chmod 600 it", path, fi.Mode().Perm()))
	}
	return c, warns, nil
}

// resolve applies the precedence flag > environment > file > default to
// the server and the API key. flagServer and flagKey are "" when not given.
func resolve(flagServer, flagKey, flagConfig string, getenv func(string) string) (settings, error) {
	var s settings
	path, explicit := configPath(flagConfig, getenv)
	fc, warns, err := readConfigFile(path, explicit)
	if err != nil {
		return s, err
	}
	s.Warnings = warns
	s.Server, s.ServerFrom = pick(flagServer, "--server", getenv(EnvServer), EnvServer, fc.Server, path)
	if s.Server == "" {
		s.Server, s.ServerFrom = DefaultServer, "default"
	}
	s.APIKey, s.APIKeyFrom = pick(flagKey, "--api-key", getenv(EnvAPIKey), EnvAPIKey, fc.APIKey, path)
	return s, nil
}

// pick returns the first value that is set and its source's name.
func pick(flag, flagName, env, envName, file, fileName string) (string, string) {
	switch {
	case flag != "":
		return flag, flagName
	case env != "":
		return env, envName
	case file != "":
		return file, fileName
	}
	return "", ""
}
