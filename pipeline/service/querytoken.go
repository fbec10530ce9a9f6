package service

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoQueryToken means the query token file does not exist: no process answers queries
// at that address, or it writes its token elsewhere (--query-token-file).
var ErrNoQueryToken = errors.New("no query token")

// QueryTokenPath is the query token file of the query server at addr: file when one is
// named (--query-token-file), else query-<port>.token in the "sluice" directory of the
// user's configuration directory (os.UserConfigDir: $XDG_CONFIG_HOME or ~/.config on
// Linux, ~/Library/Application Support on macOS, %AppData% on Windows). The port keys
// the default, so that every sluice dev on a machine has its own file and the server and
// `sluice query` agree on it whether addr says localhost or 127.0.0.1.
func QueryTokenPath(file, addr string) (string, error) {
	if file != "" {
		return file, nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("query token file of %q: %w", addr, err)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("query token file of %q: the address needs a port", addr)
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("query token file: %w; name one with --query-token-file", err)
	}
	return filepath.Join(dir, "sluice", "query-"+port+".token"), nil
}

// newQueryToken returns 32 random bytes as hex.
func newQueryToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// writeQueryToken writes token to path atomically: to a temporary file of mode 0600 in
// the same directory (created 0700 if missing), then renamed over path. No reader ever
// sees a partial token, and no other user can read it at any point.
func writeQueryToken(path, token string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("query token file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".query-token-*") // mode 0600
	if err != nil {
		return fmt.Errorf("query token file: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("query token file %s: %w", path, err)
	}
	return nil
}

// removeQueryToken removes path if it still holds token (a later process may have
// replaced it with its own).
func removeQueryToken(path, token string) error {
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(bytes.TrimSpace(b), []byte(token)) {
		return nil
	}
	return os.Remove(path)
}

// ReadQueryToken reads the token of a running query server from path (QueryTokenPath).
// A missing file is ErrNoQueryToken.
func ReadQueryToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w at %s", ErrNoQueryToken, path)
	}
	if err != nil {
		return "", fmt.Errorf("query token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("query token file %s is empty", path)
	}
	return token, nil
}
