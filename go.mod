module github.com/wschan/wschan

go 1.26.8

require (
	github.com/lxzan/gws v1.8.9
	github.com/spf13/cobra v1.10.2
	go.uber.org/goleak v1.3.0
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)
