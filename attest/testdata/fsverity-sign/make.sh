#!/bin/sh
# Regenerates the reference signatures of TestSignPKCS7MatchesReference:
# throwaway keys and self-signed certificates (valid for 100 years) and what
# the real `fsverity sign` (fsverity-utils, Debian's fsverity package) writes
# for image with each of them. cfs-runtime's `sign --cert` must write the same
# bytes (RSA) or the same fields (ECDSA signatures are randomized).
#
# old-cfs-runtime-rsa.p7s is not regenerated: it is what cfs-runtime's
# `sign --cert` wrote before it matched fsverity sign (smallstep/pkcs7:
# sha256WithRSAEncryption as the signature algorithm, no NULL parameters,
# the certificate embedded), over image with rsa.key. Such signatures were
# accepted by cfs-runtime's userspace verification and still must be.
set -eu
cd "$(dirname "$0")"
i=1
: >image
while [ $i -le 300 ]; do
	printf 'cfs-runtime fsverity sign reference line %04d\n' $i >>image
	i=$((i + 1))
done
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec256.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.key
for k in rsa ec256 ec384; do
	openssl req -x509 -new -key $k.key -out $k.crt -days 36500 -subj "/CN=cfs-runtime reference $k"
done
fsverity sign image rsa-sha256.p7s --key=rsa.key --cert=rsa.crt
fsverity sign image rsa-sha512.p7s --key=rsa.key --cert=rsa.crt --hash-alg=sha512
fsverity sign image ec256-sha256.p7s --key=ec256.key --cert=ec256.crt
fsverity sign image ec384-sha512.p7s --key=ec384.key --cert=ec384.crt --hash-alg=sha512 --block-size=65536
