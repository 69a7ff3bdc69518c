package jsontext

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCompact(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		lim     Limits
		err     error
	}{
		{in: ` { "a" : [ 1 , 2.5e-3 , -0 ] , "b" : null } `, out: `{"a":[1,2.5e-3,-0],"b":null}`},
		{in: `"caf\u00e9 ☕"`, out: `"caf\u00e9 ☕"`},
		{in: `true`, out: `true`},
		{in: `{}`, out: `{}`},
		{in: `[[[]]]`, lim: Limits{MaxDepth: 3}, out: `[[[]]]`},
		{in: `[[[[]]]]`, lim: Limits{MaxDepth: 3}, err: ErrDepth},
		{in: `{"a":{"b":1,"c":2}}`, lim: Limits{MaxFields: 3}, out: `{"a":{"b":1,"c":2}}`},
		{in: `{"a":{"b":1,"c":2,"d":3}}`, lim: Limits{MaxFields: 3}, err: ErrFields},
		{in: "\"\xff\"", err: ErrUTF8},
		{in: "\xff", err: ErrUTF8},
		{in: `01`, err: ErrSyntax},
		{in: `1.`, err: ErrSyntax},
		{in: `-`, err: ErrSyntax},
		{in: `1e`, err: ErrSyntax},
		{in: `{"a" 1}`, err: ErrSyntax},
		{in: `{"a":1,}`, err: ErrSyntax},
		{in: `[1,]`, err: ErrSyntax},
		{in: `"\x"`, err: ErrSyntax},
		{in: `"\u12"`, err: ErrSyntax},
		{in: "\"a\nb\"", err: ErrSyntax},
		{in: `nul`, err: ErrSyntax},
		{in: `{} {}`, err: ErrSyntax},
		{in: ``, err: ErrSyntax},
		{in: `{"a":"b"`, err: ErrSyntax},
	} {
		got, err := Compact([]byte("keep:"), []byte(tc.in), tc.lim)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || string(got) != "keep:" {
				t.Errorf("Compact(%q) = %q, %v; want error %v and dst untouched", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != "keep:"+tc.out {
			t.Errorf("Compact(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
	}
}

// TestMergePatchRFC7386 runs the examples of RFC 7386, appendix A.
func TestMergePatchRFC7386(t *testing.T) {
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{``, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"\u0061":1}`, `{"a":2}`, `{"\u0061":2}`},
	} {
		got, err := MergePatch(nil, []byte(tc.target), []byte(tc.patch))
		if err != nil || string(got) != tc.want {
			t.Errorf("MergePatch(%s, %s) = %s, %v; want %s", tc.target, tc.patch, got, err, tc.want)
		}
	}
}

func TestAppendQuote(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "tab\tnl\n\x01", "ünïcödé ☕", "bad\xffutf8"} {
		q := AppendQuote(nil, s)
		var back string
		if err := json.Unmarshal(q, &back); err != nil {
			t.Fatalf("AppendQuote(%q) = %s: not JSON: %v", s, q, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("round trip of %q = %q", s, back)
		}
	}
}

// FuzzCompact checks Compact against encoding/json: the same verdict on
// valid UTF-8 input, and an output that means the same value.
func FuzzCompact(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"x\u00e9"`, ` 1.5e3 `, `[`, "\"\xff\"", `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Compact(nil, in, Limits{})
		if !utf8.Valid(in) {
			return // encoding/json accepts invalid UTF-8; we reject it by design
		}
		valid := json.Valid(in)
		if (err == nil) != valid {
			t.Fatalf("Compact(%q) error %v, json.Valid %v", in, err, valid)
		}
		if err != nil {
			return
		}
		var want bytes.Buffer
		if err := json.Compact(&want, in); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, want.Bytes()) {
			t.Fatalf("Compact(%q) = %q, json.Compact = %q", in, out, want.Bytes())
		}
		// Compact output is a fixed point and walks cleanly.
		again, err := Compact(nil, out, Limits{})
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Compact not idempotent on %q: %q, %v", out, again, err)
		}
		if out[0] == '{' {
			if err := Members(out, func(k, v []byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzMergePatch checks that merging valid documents never fails or
// panics and yields valid JSON, and that a patch applied twice changes
// nothing more (merge patches are idempotent).
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":null,"c":[1]}}`))
	f.Add([]byte(`[1]`), []byte(`{"x":null}`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		tc, err := Compact(nil, target, Limits{MaxDepth: 64})
		if err != nil {
			return
		}
		pc, err := Compact(nil, patch, Limits{MaxDepth: 64})
		if err != nil {
			return
		}
		once, err := MergePatch(nil, tc, pc)
		if err != nil {
			t.Fatalf("MergePatch(%s, %s): %v", tc, pc, err)
		}
		if !json.Valid(once) {
			t.Fatalf("MergePatch(%s, %s) = %s: invalid JSON", tc, pc, once)
		}
		twice, err := MergePatch(nil, once, pc)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent: %s then %s (%v)", once, twice, err)
		}
	})
}

func BenchmarkCompact(b *testing.B) {
	in := []byte(`{"type":"person","data":{"name":"John","age":30,"tags":["a","b"],"address":{"city":"Oslo","zip":"0150"}},"metadata":{"source":"bench"}}`)
	dst := make([]byte, 0, len(in))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = Compact(dst[:0], in, Limits{MaxDepth: 32, MaxFields: 10000}); err != nil {
			b.Fatal(err)
		}
	}
}
