package loadtest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// workload is the immutable, shared description of what to send. Each
// worker pairs it with its own requestGen.
type workload struct {
	kind      string
	mix       Mix
	keys      KeyGen
	tmpl      *Template
	method    []byte
	itemsPath []byte // "<base>/v1/items/<prefix>"
	addPath   []byte // "<base>/v1/items"
	bodies    [][]byte
	headers   [][2]string
	usesKey   bool
}

// numBodies is how many distinct generated bodies a run cycles through.
const numBodies = 8

func newWorkload(c *Config) (*workload, error) {
	t, err := ParseTemplate(c.Target)
	if err != nil {
		return nil, err
	}
	mix, err := ParseMix(c.Mix)
	if err != nil {
		return nil, err
	}
	kd, err := ParseKeyDist(c.KeyDist)
	if err != nil {
		return nil, err
	}
	keys, err := NewKeyGen(kd, c.Keys)
	if err != nil {
		return nil, err
	}
	w := &workload{kind: c.Workload, mix: mix, keys: keys, tmpl: t, method: []byte(c.Method)}
	if c.Workload == WorkloadItems {
		base := strings.TrimSuffix(t.Path(), "/")
		w.addPath = []byte(base + "/v1/items")
		w.itemsPath = []byte(base + "/v1/items/" + c.KeyPrefix)
		w.usesKey = true
	} else {
		w.usesKey = t.uses(phKey)
	}
	if c.Workload == WorkloadItems || (c.Method != "GET" && c.Method != "HEAD") {
		for i := range numBodies {
			w.bodies = append(w.bodies, withMetadata(genBody(c.ItemType, c.BodySize, i), c.MetadataFields, i))
		}
	}
	if c.Tenant != "" {
		w.headers = append(w.headers, [2]string{"X-Brainy-Tenant", c.Tenant})
	}
	if c.APIKey != "" {
		w.headers = append(w.headers, [2]string{"Authorization", "Bearer " + c.APIKey})
	}
	for _, h := range c.Headers {
		name, value, err := parseHeader(h)
		if err != nil {
			return nil, err
		}
		w.headers = append(w.headers, [2]string{name, value})
	}
	return w, nil
}

// genBody returns a JSON item body of exactly size bytes when size is at
// least the envelope's size, else the bare envelope:
// {"type":"T","data":{"n":I,"pad":"abc..."}}.
func genBody(itemType string, size, variant int) []byte {
	head := `{"type":` + strconv.Quote(itemType) + `,"data":{"n":` + strconv.Itoa(variant) + `,"pad":"`
	const tail = `"}}`
	b := make([]byte, 0, max(size, len(head)+len(tail)))
	b = append(b, head...)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := 0; len(b) < size-len(tail); i++ {
		b = append(b, alphabet[(i*7+variant*13)%len(alphabet)])
	}
	return append(b, tail...)
}

// withMetadata adds n top-level metadata fields to body, a generated item
// body ({...}), their values set by variant: a string, a number, a
// boolean and an array of strings, taking turns.
func withMetadata(body []byte, n, variant int) []byte {
	if n == 0 {
		return body
	}
	b := append(body[:len(body)-1:len(body)-1], `,"metadata":{`...)
	for f := range n {
		if f > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `"f%d":`, f)
		switch v := variant*7 + f; f % 4 {
		case 0:
			b = fmt.Appendf(b, `"v%d"`, v%5)
		case 1:
			b = strconv.AppendInt(b, int64(v%100), 10)
		case 2:
			b = strconv.AppendBool(b, v%2 == 0)
		default:
			b = fmt.Appendf(b, `["a","t%d"]`, v%6)
		}
	}
	return append(b, "}}"...)
}

// requestGen is one worker's request generator. It keeps one prepared
// fasthttp.Request per op, so switching ops changes only the URI and body.
// Not safe for concurrent use.
type requestGen struct {
	w      *workload
	rng    *rand.Rand
	worker int
	seq    uint64
	uri    []byte // reused URI buffer
	reqs   [numOps]*fasthttp.Request
}

func newRequestGen(w *workload, seed uint64, worker int) *requestGen {
	g := &requestGen{
		w:      w,
		rng:    rand.New(rand.NewPCG(seed, uint64(worker)+0x9e3779b97f4a7c15)),
		worker: worker,
		uri:    make([]byte, 0, 256),
	}
	for op := range numOps {
		req := &fasthttp.Request{}
		req.Header.SetHost(w.tmpl.HostHeader)
		for _, h := range w.headers {
			req.Header.Set(h[0], h[1])
		}
		switch op {
		case OpRead:
			req.Header.SetMethodBytes(methodGet)
		case OpWrite:
			req.Header.SetMethodBytes(methodPut)
		case OpAdd:
			req.Header.SetMethodBytes(methodPost)
		case OpURL:
			req.Header.SetMethodBytes(w.method)
		}
		if len(w.bodies) > 0 && op != OpRead {
			req.Header.SetContentType("application/json")
		}
		g.reqs[op] = req
	}
	return g
}

var (
	methodGet  = []byte("GET")
	methodPut  = []byte("PUT")
	methodPost = []byte("POST")
)

// next returns the next request and its op. The request belongs to g and
// is valid until the next call. It does not allocate once the URI buffer
// has grown to size.
func (g *requestGen) next() (*fasthttp.Request, Op) {
	w := g.w
	g.seq++
	var key uint64
	if w.usesKey {
		key = w.keys.Next(g.rng)
	}
	op := OpURL
	if w.kind == WorkloadItems {
		op = w.mix.Pick(g.rng)
	}
	req := g.reqs[op]
	switch op {
	case OpRead:
		g.uri = strconv.AppendUint(append(g.uri[:0], w.itemsPath...), key, 10)
	case OpWrite:
		g.uri = strconv.AppendUint(append(g.uri[:0], w.itemsPath...), key, 10)
		req.SetBodyRaw(w.bodies[g.seq%uint64(len(w.bodies))])
	case OpAdd:
		g.uri = append(g.uri[:0], w.addPath...)
		req.SetBodyRaw(w.bodies[g.seq%uint64(len(w.bodies))])
	default:
		g.uri = w.tmpl.AppendPath(g.uri[:0], key, g.seq, g.worker)
		if len(w.bodies) > 0 {
			req.SetBodyRaw(w.bodies[g.seq%uint64(len(w.bodies))])
		}
	}
	req.SetRequestURIBytes(g.uri)
	return req, op
}

// preloadRequest returns a PUT of key k.
func (g *requestGen) preloadRequest(k uint64) *fasthttp.Request {
	w := g.w
	req := g.reqs[OpWrite]
	g.uri = strconv.AppendUint(append(g.uri[:0], w.itemsPath...), k, 10)
	req.SetBodyRaw(w.bodies[k%uint64(len(w.bodies))])
	req.SetRequestURIBytes(g.uri)
	return req
}
