package oci

// ValidID is runc's rule for container ids (^[\w+\-.]+$); the id names a
// state directory, so nothing else may reach the file system. (Not a
// regexp: compiling one costs every runtime call at start-up.)
func ValidID(id string) bool {
	if id == "" {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}
