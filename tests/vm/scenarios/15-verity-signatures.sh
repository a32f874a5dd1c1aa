# shellcheck shell=sh
# The kernel checks cfs-runtime's PKCS#7 signatures as it checks fsverity
# sign's: fs-verity's built-in signature verification
# (CONFIG_FS_VERITY_BUILTIN_SIGNATURES) with the signers' certificates in
# the .fs-verity keyring, as fsverity-utils documents it:
#
#   keyctl padd asymmetric '' %keyring:.fs-verity <cert.der
#   fsverity enable --signature=SIG FILE
#
# FS_IOC_ENABLE_VERITY then runs the kernel's PKCS#7 parser and verifies the
# signature over the file's formatted digest. Signatures by `cfs-runtime
# sign --cert` (RSA, ECDSA P-256, RSA over a sha512 digest) and by
# `fsverity sign` are accepted; a signature over another digest (EKEYREJECTED),
# one whose certificate is not in the keyring (ENOKEY) and what cfs-runtime
# sign wrote before it matched fsverity sign (sha256WithRSAEncryption, which
# the kernel's PKCS#7 parser does not know: ENOPKG) are refused, and leave
# the file without fs-verity.
#
# require_signatures stays 0: a signature given to FS_IOC_ENABLE_VERITY is
# checked either way, and 1 would refuse the other scenarios' unsigned files.
# The keyring keeps its certificates until power-off; unsigned files do not
# care.

# shellcheck disable=SC1091 # written by the host hook
. "$VM_DATA/digests" # PAYLOAD, PAYLOAD512
S=$VM_DATA/sigs
F=$VM_DATA/files
mkdir -p "$F"

require builtin-signatures test -e /proc/sys/fs/verity/require_signatures
check_output require-signatures-off 0 cat /proc/sys/fs/verity/require_signatures
for k in rsa ec ref; do
	require "keyctl-padd-$k" sh -c "keyctl padd asymmetric '' %keyring:.fs-verity <'$VM_DATA/keys/$k.der'"
done

# enabled NAME SIG [--hash-alg=sha512]: a copy of payload enabled with SIG
# must measure as payload's digest
enabled() {
	_n=$1
	_s=$2
	shift 2
	cp "$VM_DATA/payload" "$F/$_n"
	check "$_n" fsverity enable "$@" --signature="$S/$_s" "$F/$_n"
	case " $* " in
	*sha512*) _want="sha512:$PAYLOAD512 $F/$_n" ;;
	*) _want="sha256:$PAYLOAD $F/$_n" ;;
	esac
	check_output "$_n-measure" "$_want" fsverity measure "$F/$_n"
}

# refused NAME SIG ERRNO-TEXT: enabling a copy of payload with SIG fails
# with that strerror text and leaves the file without fs-verity
refused() {
	cp "$VM_DATA/payload" "$F/$1"
	check_fails "$1" "$3" fsverity enable --signature="$S/$2" "$F/$1"
	check_fails "$1-no-verity" "ENODATA" vmtool measure "$F/$1"
}

enabled rsa-cfs-runtime rsa-own.sig
enabled rsa-fsverity-sign rsa-ref.sig
enabled ec-cfs-runtime ec-own.sig
enabled ec-fsverity-sign ec-ref.sig
enabled rsa-sha512-cfs-runtime rsa512-own.sig --hash-alg=sha512
enabled rsa-sha512-fsverity-sign rsa512-ref.sig --hash-alg=sha512

refused other-digest other-digest.sig "Key was rejected by service"
refused untrusted-key untrusted.sig "Required key not available"

# attest/testdata/fsverity-sign's image: fsverity sign's signature is
# accepted, the old cfs-runtime form over the same digest is not.
cp "$VM_DATA/ref/image" "$F/ref-new"
cp "$VM_DATA/ref/image" "$F/ref-old"
check ref-fsverity-sign fsverity enable --signature="$VM_DATA/ref/new.sig" "$F/ref-new"
check_fails ref-old-cfs-runtime "Package not installed" fsverity enable --signature="$VM_DATA/ref/old.sig" "$F/ref-old"
check_fails ref-old-cfs-runtime-no-verity "ENODATA" vmtool measure "$F/ref-old"
