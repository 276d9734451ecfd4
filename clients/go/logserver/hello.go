package logserver

import (
	"encoding/binary"
	"fmt"

	capnp "capnproto.org/go/capnp/v3"

	"github.com/log-server/log_server/clients/go/internal/logcapnp"
)

// helloFrame encodes the HelloMsg that WithHello sends first on a connection: a 4-byte
// big-endian length, then the message in standard (unpacked) single-segment encoding,
// unlike the packed LoggerMsg frames after it, because that is what the original
// project's server reads. fromPublicIP stays empty, as the original clients leave it.
func helloFrame(fromName, fromHost, fromAddress, toAddress string) ([]byte, error) {
	msg, seg, err := capnp.NewMessage(capnp.SingleSegment(nil))
	if err != nil {
		return nil, fmt.Errorf("logserver: encoding the HelloMsg: %w", err)
	}
	hello, err := logcapnp.NewRootHelloMsg(seg)
	if err != nil {
		return nil, fmt.Errorf("logserver: encoding the HelloMsg: %w", err)
	}
	for _, set := range []struct {
		f func(string) error
		v string
	}{
		{hello.SetFromName, fromName}, {hello.SetFromHost, fromHost},
		{hello.SetFromAddress, fromAddress}, {hello.SetToAddress, toAddress},
		{hello.SetFromPublicIP, ""},
	} {
		if err := set.f(set.v); err != nil {
			return nil, fmt.Errorf("logserver: encoding the HelloMsg: %w", err)
		}
	}
	data, err := msg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("logserver: encoding the HelloMsg: %w", err)
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(data)), uint32(len(data)))
	return append(frame, data...), nil
}
