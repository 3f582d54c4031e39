package wschan

// Internals exposed to the external test package.
var (
	ParseClosePayload = parseClosePayload
	ParseCloseFrame   = parseCloseFrame
	ParseURL          = parseURL
)

// TextWatch exposes the early UTF-8 check to tests.
type TextWatch = textWatch

func (w *textWatch) Feed(p []byte) bool { return w.feed(p) }
