package loadtest

import (
	"fmt"
	"io"
	"os"
)

// ReadResultFile decodes the JSON result in path.
func ReadResultFile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer f.Close()
	r, err := DecodeResult(f)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return r, nil
}

// WriteFile writes r to path with write (WriteJSON or WriteHTML), replacing
// the file only once it is complete.
func (r *Result) WriteFile(path string, write func(*Result, io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	if err := write(r, f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("loadtest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	return nil
}
