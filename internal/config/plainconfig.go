package config

import "github.com/cfs-runtime/cfs-runtime/internal/plaintoml"

// plainConfig fills c from a plain document of known string keys; false
// (c untouched) for anything else: unknown keys, other types.
func plainConfig(data []byte, c *Config) bool {
	doc, ok := plaintoml.Decode(data)
	if !ok || len(doc.Arrays) > 0 {
		return false
	}
	out := *c
	for k, v := range doc.Top {
		s, isString := v.(string)
		if !isString {
			return false
		}
		switch k {
		case "runtime":
			out.Runtime = s
		case "store_dir":
			out.StoreDir = s
		case "state_dir":
			out.StateDir = s
		case "log_file":
			out.LogFile = s
		case "log_level":
			out.LogLevel = s
		case "policy":
			out.Policy = s
		case "containerd_address":
			out.ContainerdAddress = s
		case "containerd_namespace":
			out.ContainerdNamespace = s
		case "containers_storage":
			out.ContainersStorage = s
		case "audit_file":
			out.AuditFile = s
		default:
			return false
		}
	}
	*c = out
	return true
}
