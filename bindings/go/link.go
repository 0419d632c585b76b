package wsgate

// The package links the installed libwsgate, found only through pkg-config
// (PKG_CONFIG_PATH names the prefix when it is not a system one).

/*
#cgo pkg-config: wsgate
#include <wsgate/wsgate.h>
*/
import "C"

// Version is the loaded library's release version, e.g. "0.1.0".
func Version() string { return C.GoString(C.wsg_version()) }

// HeaderVersion is the version of the wsgate.h this package was compiled
// against, as WSG_VERSION_NUM (MAJOR*10000 + MINOR*100 + PATCH).
const HeaderVersion = C.WSG_VERSION_NUM

// VersionNum is the loaded library's version as WSG_VERSION_NUM, to compare
// with HeaderVersion.
func VersionNum() int { return int(C.wsg_version_num()) }
