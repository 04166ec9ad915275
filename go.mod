module github.com/sipwall/sipwall

go 1.26.8

require (
	github.com/google/go-cmp v0.7.0
	github.com/google/gopacket v1.1.19
	github.com/mdlayher/netlink v1.7.3-0.20250113171957-fbb4dce95f42
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/sys v0.50.0
)

require (
	github.com/google/nftables v0.3.0 // indirect
	github.com/mdlayher/socket v0.5.0 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sync v0.6.0 // indirect
)
