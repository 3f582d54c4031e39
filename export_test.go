package wschan

// Internals exposed to the external test package.
var (
	ParseClosePayload = parseClosePayload
	ParseCloseFrame   = parseCloseFrame
	ParseURL          = parseURL
)
