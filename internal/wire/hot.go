package wire

// Hot reads (package cluster, leases.go): cores only.
const (
	// MethodHotGet asks a partition's leader for an item (the request is a
	// Request) and, if the item is hot, a lease on it. The answer is the
	// lease in microseconds (uvarint, 0 for none) then the item as
	// MethodGet answers it.
	MethodHotGet uint16 = 126
	// MethodHotInvalidate tells a lease holder to drop its leases on
	// items (a Request per item, each length-prefixed), before the leader
	// writes them. The answer is empty.
	MethodHotInvalidate uint16 = 127
)
