# shellcheck shell=bash
# Inputs for the kernel's own check of PKCS#7 signatures (15-verity-signatures.sh),
# made on the host with the guest's static cfs-runtime and the host's
# `fsverity sign` (fsverity-utils, the reference):
#
#   keys/{rsa,ec}.der   the certificates the guest loads into the .fs-verity
#                       keyring (RSA 2048 and ECDSA P-256; their keys stay here)
#   keys/ref.der        the certificate of attest/testdata/fsverity-sign/rsa.key
#   payload, other      two files of random bytes; every file the guest enables
#                       is a copy of payload (the guest copies them: a file
#                       can be enabled once)
#   sigs/KIND-own.sig   `cfs-runtime sign --cert` over payload (sha256),
#                       KIND rsa, ec, rsa512 (sha512); sigs/KIND-ref.sig
#                       the same by `fsverity sign`
#   sigs/other-digest.sig  cfs-runtime sign with the trusted RSA key over
#                       other's digest
#   sigs/untrusted.sig  cfs-runtime sign over payload with a key whose
#                       certificate is not loaded
#   ref/image, ref/old.sig, ref/new.sig  attest/testdata/fsverity-sign's
#                       image with what cfs-runtime sign wrote before it matched
#                       fsverity sign (sha256WithRSAEncryption) and with
#                       fsverity sign's signature
#   digests             PAYLOAD=<hex> PAYLOAD512=<hex>: payload's digests (sh)
#
# The guest gets fsverity (enable --signature) and keyctl (keyutils) with
# their libraries.
C=$VM_ROOT/usr/local/bin/cfs-runtime
[ -x "$C" ] || {
	echo "no cfs-runtime in the guest root (did go build fail?)"
	exit 1
}
vm_stage_bin "$(command -v fsverity)" /usr/local/bin/fsverity
vm_stage_bin "$(command -v keyctl)" /usr/local/bin/keyctl
D=$VM_DATA
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$D/keys" "$D/sigs" "$D/ref"

key() { # key NAME ALGORITHM-OPTIONS...: $t/NAME.key, $t/NAME.crt
	local name=$1
	shift
	openssl genpkey "$@" -out "$t/$name.key" 2>/dev/null
	openssl req -x509 -new -key "$t/$name.key" -out "$t/$name.crt" -days 2 -subj "/CN=cfs-runtime vm $name"
}
key rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048
key ec -algorithm EC -pkeyopt ec_paramgen_curve:P-256
key untrusted -algorithm RSA -pkeyopt rsa_keygen_bits:2048
for k in rsa ec; do
	openssl x509 -in "$t/$k.crt" -outform DER -out "$D/keys/$k.der"
done

head -c 20000 /dev/urandom >"$D/payload"
head -c 20000 /dev/urandom >"$D/other"
p256=$(fsverity digest --compact "$D/payload")
p512=$(fsverity digest --compact --hash-alg=sha512 "$D/payload")
printf 'PAYLOAD=%s\nPAYLOAD512=%s\n' "$p256" "$p512" >"$D/digests"

# own SIG KEY FILE [ALGORITHM]: cfs-runtime sign --cert's PKCS#7, decoded
own() {
	local alg=${4:-fsverity-sha256-12}
	"$C" sign --key "$t/$2.key" --cert "$t/$2.crt" --algorithm "$alg" --format json "$3" >"$t/sig.json"
	jq -r --arg k "composefs.merged.erofs.v1.$alg.sig" '.[$k]' "$t/sig.json" | base64 -d >"$D/sigs/$1"
}
own rsa-own.sig rsa "$D/payload"
own ec-own.sig ec "$D/payload"
own rsa512-own.sig rsa "$D/payload" fsverity-sha512-12
own other-digest.sig rsa "$D/other"
own untrusted.sig untrusted "$D/payload"
fsverity sign "$D/payload" "$D/sigs/rsa-ref.sig" --key="$t/rsa.key" --cert="$t/rsa.crt"
fsverity sign "$D/payload" "$D/sigs/ec-ref.sig" --key="$t/ec.key" --cert="$t/ec.crt"
fsverity sign "$D/payload" "$D/sigs/rsa512-ref.sig" --key="$t/rsa.key" --cert="$t/rsa.crt" --hash-alg=sha512

ref=attest/testdata/fsverity-sign
cp "$ref/image" "$D/ref/image"
cp "$ref/old-cfs-runtime-rsa.p7s" "$D/ref/old.sig"
cp "$ref/rsa-sha256.p7s" "$D/ref/new.sig"
openssl x509 -in "$ref/rsa.crt" -outform DER -out "$D/keys/ref.der"
