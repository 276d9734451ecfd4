package logserver

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/log-server/log_server/clients/go/internal/logcapnp"
)

// Level is one of the server's levels (the same numbers in logger.capnp and
// log_service.proto). A number outside the list is sent as is; the server writes it as
// LEVEL<n>.
type Level uint16

// The server's levels, in schema order.
const (
	LevelNotset Level = iota
	LevelDebug
	LevelStream
	LevelInfo
	LevelLogon
	LevelLogout
	LevelTrade
	LevelSchedule
	LevelReport
	LevelWarning
	LevelError
	LevelCritical
)

var levelNames = [...]string{
	"NOTSET", "DEBUG", "STREAM", "INFO", "LOGON", "LOGOUT", "TRADE", "SCHEDULE", "REPORT",
	"WARNING", "ERROR", "CRITICAL",
}

// String is the upper-case name the server writes (LEVEL<n> for an unknown number).
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("LEVEL%d", uint16(l))
}

// ParseLevel accepts a level's name in any case ("info", "WARNING").
func ParseLevel(name string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(n, name) {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("logserver: unknown level %q (one of %s)", name, strings.Join(levelNames[:], ", "))
}

// SlogLevel maps a slog level onto the server's levels by range, so that levels between
// the named ones (slog.LevelInfo+2, say) land on the nearest one below:
//
//	below slog.LevelInfo (DEBUG and anything lower)  -> DEBUG
//	slog.LevelInfo  up to slog.LevelWarn-1          -> INFO
//	slog.LevelWarn  up to slog.LevelError-1         -> WARNING
//	slog.LevelError up to slog.LevelError+3         -> ERROR
//	slog.LevelError+4 and above                     -> CRITICAL
//
// The server's business levels (STREAM, LOGON, TRADE, ...) have no slog counterpart:
// send them with Client.Log, or map them with HandlerOptions.MapLevel.
func SlogLevel(l slog.Level) Level {
	switch {
	case l < slog.LevelInfo:
		return LevelDebug
	case l < slog.LevelWarn:
		return LevelInfo
	case l < slog.LevelError:
		return LevelWarning
	case l < slog.LevelError+4:
		return LevelError
	default:
		return LevelCritical
	}
}

func (l Level) capnp() logcapnp.Level { return logcapnp.Level(l) }
