package membership

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Meta describes a node to the rest of the cluster. It travels as
// memberlist node metadata, so its encoding is at most MetaMaxSize bytes.
type Meta struct {
	// ID names the node; it is also the memberlist node name, so it must be
	// unique in the cluster.
	ID string
	// QUICAddr is the host:port of the node's QUIC transport.
	QUICAddr string
	// HTTPAddr is the host:port of the node's HTTP API.
	HTTPAddr string
	// Zone is the failure domain inside a region (for example an AWS
	// availability zone).
	Zone string
	// Region groups zones.
	Region string
	// Role tells what the node does: RoleCore, RoleReader, or another
	// (a region probe's "probe").
	Role string
}

// The roles of brainy-core nodes: a voter (RoleCore, which older nodes
// announce too) and a reader, which holds non-voting replicas.
const (
	RoleCore   = "core"
	RoleReader = "reader"
)

// IsCore reports whether role is a brainy-core node's, voter or reader:
// one that holds replicas, answers the cluster's methods and forwards.
func IsCore(role string) bool { return role == RoleCore || role == RoleReader }

// MetaMaxSize is the largest encoded Meta: memberlist refuses node metadata
// above 512 bytes.
const MetaMaxSize = 512

// metaVersion is the first byte of an encoded Meta. A new layout gets a new
// version so that mixed-version clusters fail loudly instead of misreading.
const metaVersion = 1

// The encoding is
//
//	version(1) then, for each field in declaration order, len(1) bytes(len)
//
// Single-byte lengths keep it compact (the six fields of a typical node
// take well under 100 bytes) and make decoding trivially bounded.
const metaFields = 6

func (m *Meta) fields() [metaFields]*string {
	return [metaFields]*string{&m.ID, &m.QUICAddr, &m.HTTPAddr, &m.Zone, &m.Region, &m.Role}
}

var metaFieldNames = [metaFields]string{"ID", "QUICAddr", "HTTPAddr", "Zone", "Region", "Role"}

// EncodedLen is the size of m's encoding.
func (m Meta) EncodedLen() int {
	n := 1
	for _, f := range m.fields() {
		n += 1 + len(*f)
	}
	return n
}

// Validate reports every field that cannot be encoded.
func (m Meta) Validate() error {
	var errs []error
	if m.ID == "" {
		errs = append(errs, errors.New("Meta.ID is required"))
	}
	for i, f := range m.fields() {
		if len(*f) > 255 {
			errs = append(errs, fmt.Errorf("Meta.%s is %d bytes, at most 255", metaFieldNames[i], len(*f)))
		}
		if !utf8.ValidString(*f) {
			errs = append(errs, fmt.Errorf("Meta.%s is not valid UTF-8", metaFieldNames[i]))
		}
	}
	if n := m.EncodedLen(); n > MetaMaxSize {
		errs = append(errs, fmt.Errorf("Meta encodes to %d bytes, at most %d", n, MetaMaxSize))
	}
	return errors.Join(errs...)
}

// AppendEncode appends m's encoding to b. It returns an error if m does not
// pass Validate (except for a missing ID, which the encoding does not need).
func (m Meta) AppendEncode(b []byte) ([]byte, error) {
	if n := m.EncodedLen(); n > MetaMaxSize {
		return b, fmt.Errorf("membership: meta encodes to %d bytes, at most %d", n, MetaMaxSize)
	}
	b = append(b, metaVersion)
	for i, f := range m.fields() {
		if len(*f) > 255 {
			return b, fmt.Errorf("membership: meta field %s is %d bytes, at most 255", metaFieldNames[i], len(*f))
		}
		b = append(b, byte(len(*f)))
		b = append(b, *f...)
	}
	return b, nil
}

// DecodeMeta parses an encoded Meta. It reads only within b, so any input,
// however hostile, costs at most len(b) work, and it rejects anything that
// AppendEncode would not produce.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, errors.New("membership: meta is empty")
	}
	if len(b) > MetaMaxSize {
		return m, fmt.Errorf("membership: meta is %d bytes, at most %d", len(b), MetaMaxSize)
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("membership: meta version %d is not supported (want %d)", b[0], metaVersion)
	}
	rest := b[1:]
	for i, f := range m.fields() {
		if len(rest) == 0 {
			return Meta{}, fmt.Errorf("membership: meta ends before field %s", metaFieldNames[i])
		}
		n := int(rest[0])
		rest = rest[1:]
		if n > len(rest) {
			return Meta{}, fmt.Errorf("membership: meta field %s claims %d bytes, %d remain", metaFieldNames[i], n, len(rest))
		}
		if !utf8.Valid(rest[:n]) {
			return Meta{}, fmt.Errorf("membership: meta field %s is not valid UTF-8", metaFieldNames[i])
		}
		*f = string(rest[:n])
		rest = rest[n:]
	}
	if len(rest) > 0 {
		return Meta{}, fmt.Errorf("membership: meta has %d trailing bytes", len(rest))
	}
	return m, nil
}
