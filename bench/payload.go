package bench

// headerLen is the size of the header at the start of every message: the
// connection number in 6 lower-case hex digits, then the sequence number in
// 10.
const (
	headerLen  = 16
	connDigits = 6
)

const hexDigits = "0123456789abcdef"

// pattern returns a message body for connection id: printable ASCII (valid
// as text), different per connection. The header is left to stamp.
func pattern(id, size int) []byte {
	p := make([]byte, size)
	x := uint32(id)*2654435761 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = 'a' + byte(x%26)
	}
	return p
}

// stamp writes the header for connection id and message seq into p.
func stamp(p []byte, id int, seq uint64) {
	v := uint64(id)
	for i := connDigits - 1; i >= 0; i-- {
		p[i] = hexDigits[v&0xf]
		v >>= 4
	}
	for i := headerLen - 1; i >= connDigits; i-- {
		p[i] = hexDigits[seq&0xf]
		seq >>= 4
	}
}

// parseHeader reads the header stamp wrote; ok is false if p is too short
// or the header is not lower-case hex.
func parseHeader(p []byte) (id int, seq uint64, ok bool) {
	if len(p) < headerLen {
		return 0, 0, false
	}
	var v uint64
	for i := range headerLen {
		var d byte
		switch c := p[i]; {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, 0, false
		}
		v = v<<4 | uint64(d)
		if i == connDigits-1 {
			id, v = int(v), 0
		}
	}
	return id, v, true
}
