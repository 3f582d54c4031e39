package bench

var (
	Stamp       = stamp
	ParseHeader = parseHeader
)
