// Package jsontext validates, compacts and edits JSON text without building
// a tree of Go values. Request bodies pass through Compact exactly once:
// it checks syntax, UTF-8, nesting depth and member counts in one pass and
// writes the compacted form, which is what Brainy stores. The other
// functions work on that compacted, already valid form.
package jsontext

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits bound a document. A zero field means no limit.
type Limits struct {
	// MaxDepth bounds nesting of objects and arrays; a scalar has depth 0.
	MaxDepth int
	// MaxFields bounds object members over the whole document.
	MaxFields int
}

// Error kinds, for errors.Is.
var (
	ErrSyntax = errors.New("jsontext: malformed JSON")
	ErrUTF8   = errors.New("jsontext: invalid UTF-8")
	ErrDepth  = errors.New("jsontext: nesting too deep")
	ErrFields = errors.New("jsontext: too many object members")
)

// Error locates a problem in the input.
type Error struct {
	Kind   error // one of the Err* sentinels
	Offset int   // byte offset in the input
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%v at byte %d", e.Kind, e.Offset)
	}
	return fmt.Sprintf("%v at byte %d: %s", e.Kind, e.Offset, e.Detail)
}

// Code names an error's kind as the HTTP API reports it: "invalid_json",
// "invalid_utf8", "too_deep" or "too_many_fields".
func Code(err error) string {
	switch {
	case errors.Is(err, ErrUTF8):
		return "invalid_utf8"
	case errors.Is(err, ErrDepth):
		return "too_deep"
	case errors.Is(err, ErrFields):
		return "too_many_fields"
	}
	return "invalid_json"
}

// Unwrap returns the kind, so errors.Is(err, ErrSyntax) works.
func (e *Error) Unwrap() error { return e.Kind }

// Compact appends the compacted form of the single JSON value in src to dst
// and returns it. It fails, without a partial result, if src is not exactly
// one valid JSON value (surrounding whitespace allowed) within lim.
func Compact(dst, src []byte, lim Limits) ([]byte, error) {
	p := parser{src: src, dst: dst, lim: lim}
	start := len(dst)
	p.ws()
	if err := p.value(); err != nil {
		return dst[:start], err
	}
	p.ws()
	if p.pos != len(p.src) {
		return dst[:start], p.fail(ErrSyntax, "unexpected data after the value")
	}
	return p.dst, nil
}

type parser struct {
	src    []byte
	pos    int
	dst    []byte
	lim    Limits
	depth  int
	fields int
}

func (p *parser) fail(kind error, detail string) error {
	return &Error{Kind: kind, Offset: p.pos, Detail: detail}
}

func (p *parser) ws() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() error {
	if p.pos >= len(p.src) {
		return p.fail(ErrSyntax, "unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	default:
		if c >= utf8.RuneSelf {
			if r, _ := utf8.DecodeRune(p.src[p.pos:]); r == utf8.RuneError {
				return p.fail(ErrUTF8, "")
			}
		}
		return p.fail(ErrSyntax, fmt.Sprintf("unexpected character %q", c))
	}
}

func (p *parser) enter() error {
	p.depth++
	if p.lim.MaxDepth > 0 && p.depth > p.lim.MaxDepth {
		return p.fail(ErrDepth, fmt.Sprintf("the limit is %d", p.lim.MaxDepth))
	}
	return nil
}

func (p *parser) object() error {
	if err := p.enter(); err != nil {
		return err
	}
	p.dst = append(p.dst, '{')
	p.pos++
	p.ws()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		p.dst = append(p.dst, '}')
		p.depth--
		return nil
	}
	for {
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return p.fail(ErrSyntax, "expected a member name")
		}
		p.fields++
		if p.lim.MaxFields > 0 && p.fields > p.lim.MaxFields {
			return p.fail(ErrFields, fmt.Sprintf("the limit is %d", p.lim.MaxFields))
		}
		if err := p.string(); err != nil {
			return err
		}
		p.ws()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return p.fail(ErrSyntax, "expected ':'")
		}
		p.pos++
		p.dst = append(p.dst, ':')
		p.ws()
		if err := p.value(); err != nil {
			return err
		}
		p.ws()
		if p.pos >= len(p.src) {
			return p.fail(ErrSyntax, "unexpected end of input")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			p.dst = append(p.dst, ',')
			p.ws()
		case '}':
			p.pos++
			p.dst = append(p.dst, '}')
			p.depth--
			return nil
		default:
			return p.fail(ErrSyntax, "expected ',' or '}'")
		}
	}
}

func (p *parser) array() error {
	if err := p.enter(); err != nil {
		return err
	}
	p.dst = append(p.dst, '[')
	p.pos++
	p.ws()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		p.dst = append(p.dst, ']')
		p.depth--
		return nil
	}
	for {
		if err := p.value(); err != nil {
			return err
		}
		p.ws()
		if p.pos >= len(p.src) {
			return p.fail(ErrSyntax, "unexpected end of input")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			p.dst = append(p.dst, ',')
			p.ws()
		case ']':
			p.pos++
			p.dst = append(p.dst, ']')
			p.depth--
			return nil
		default:
			return p.fail(ErrSyntax, "expected ',' or ']'")
		}
	}
}

func (p *parser) literal(word string) error {
	if len(p.src)-p.pos < len(word) || string(p.src[p.pos:p.pos+len(word)]) != word {
		return p.fail(ErrSyntax, "invalid literal")
	}
	p.pos += len(word)
	p.dst = append(p.dst, word...)
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *parser) number() error {
	start := p.pos
	s := p.src
	i := p.pos
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		p.pos = i
		return p.fail(ErrSyntax, "invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			p.pos = i
			return p.fail(ErrSyntax, "invalid number")
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			p.pos = i
			return p.fail(ErrSyntax, "invalid number")
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	p.pos = i
	p.dst = append(p.dst, s[start:i]...)
	return nil
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// string copies a string literal, escapes as written, checking escapes,
// control characters and UTF-8.
func (p *parser) string() error {
	s := p.src
	start := p.pos
	i := p.pos + 1
	for {
		if i >= len(s) {
			p.pos = i
			return p.fail(ErrSyntax, "unterminated string")
		}
		c := s[i]
		switch {
		case c == '"':
			i++
			p.dst = append(p.dst, s[start:i]...)
			p.pos = i
			return nil
		case c == '\\':
			if i+1 >= len(s) {
				p.pos = i
				return p.fail(ErrSyntax, "unterminated string")
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					p.pos = i
					return p.fail(ErrSyntax, "invalid \\u escape")
				}
				i += 6
			default:
				p.pos = i
				return p.fail(ErrSyntax, "invalid escape")
			}
		case c < 0x20:
			p.pos = i
			return p.fail(ErrSyntax, "control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				p.pos = i
				return p.fail(ErrUTF8, "")
			}
			i += size
		}
	}
}

// skip returns the length of the compact, valid JSON value at the start of b.
func skip(b []byte) int {
	switch b[0] {
	case '"':
		i := 1
		for b[i] != '"' {
			if b[i] == '\\' {
				i++
			}
			i++
		}
		return i + 1
	case '{', '[':
		depth := 0
		for i := 0; i < len(b); i++ {
			switch b[i] {
			case '"':
				i += skip(b[i:]) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default:
		i := 0
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

// Members calls fn for each member of the compact, valid JSON object obj,
// in order, with the raw quoted key and the raw value. It stops at the
// first error fn returns. obj must come from Compact.
func Members(obj []byte, fn func(key, value []byte) error) error {
	if len(obj) < 2 || obj[0] != '{' {
		return &Error{Kind: ErrSyntax, Detail: "not an object"}
	}
	i := 1
	for i < len(obj)-1 {
		kn := skip(obj[i:])
		key := obj[i : i+kn]
		i += kn + 1 // key and ':'
		vn := skip(obj[i:])
		if err := fn(key, obj[i:i+vn]); err != nil {
			return err
		}
		i += vn
		if obj[i] == ',' {
			i++
		}
	}
	return nil
}

// Elements calls fn for each element of the compact, valid JSON array arr.
func Elements(arr []byte, fn func(value []byte) error) error {
	if len(arr) < 2 || arr[0] != '[' {
		return &Error{Kind: ErrSyntax, Detail: "not an array"}
	}
	i := 1
	for i < len(arr)-1 {
		n := skip(arr[i:])
		if err := fn(arr[i : i+n]); err != nil {
			return err
		}
		i += n
		if arr[i] == ',' {
			i++
		}
	}
	return nil
}

// Unquote returns the string a valid, quoted JSON string literal denotes.
func Unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", &Error{Kind: ErrSyntax, Detail: "not a string"}
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", &Error{Kind: ErrSyntax, Detail: err.Error()}
			}
			return s, nil
		}
	}
	return string(inner), nil
}

const hexDigits = "0123456789abcdef"

// AppendQuote appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, so the output is always valid JSON.
func AppendQuote(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
