package wire

// Blue/green sync methods: a core of one cluster ("green") reads another
// ("blue") one way, and green's cores hand each other what they read
// (package federation, syncwire.go documents the bodies).
const (
	// MethodSyncInfo asks a blue core for its partition count and each
	// partition's leader.
	MethodSyncInfo uint16 = 140
	// MethodSyncPage reads a page of a blue partition's records.
	MethodSyncPage uint16 = 141
	// MethodSyncChanges reads the records a blue partition's log changed
	// after a position.
	MethodSyncChanges uint16 = 142
	// MethodSyncApply hands values read from blue to the leader of a green
	// partition, inside green.
	MethodSyncApply uint16 = 143
)
