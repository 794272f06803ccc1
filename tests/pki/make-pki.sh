#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make-pki.sh OUTDIR - generates the test PKI with the openssl CLI (EC P-256).
# Nothing here is secret and nothing is committed: tests run this into the
# build directory. Files (each NAME.pem with its NAME.key):
#   ca             the test CA (trust anchor: ca.pem)
#   server         CN=localhost, SAN DNS:localhost + IP:127.0.0.1 + IP:::1,
#                  365 days
#   client         CN=tlsq-test-client, clientAuth, for mTLS
#   expired        like server, but valid 2020-01-01 .. 2021-01-01
#   wronghost      CN/SAN example.org, signed by the test CA
#   wrongip        SAN DNS:localhost + IP:127.0.0.2 + IP:::2 (an IP mismatch
#                  at 127.0.0.1 and ::1 that is not for want of IP SANs)
#   dnsip          CN=127.0.0.1, SAN DNS:127.0.0.1 + DNS:::1: addresses
#                  written as DNS names, which must not verify an IP
#   future         like server, but valid only from 2099
#   other-ca       a second CA nobody trusts
#   untrusted      like server, but signed by other-ca
#   scan           like server, plus a CRL distribution point, as a public
#                  CA's certificates carry (testssl rates a certificate with
#                  neither a CRL nor an OCSP URI HIGH); for tests/scanners
#   sni-a          CN=a.tlsq.test, SAN DNS:a.tlsq.test (served by SNI)
#   sni-b          CN=b.tlsq.test, SAN DNS:b.tlsq.test + DNS:*.b.tlsq.test
# server-chain.pem is server.pem followed by ca.pem.
set -eu
out=${1:?usage: make-pki.sh OUTDIR}
mkdir -p "$out"
cd "$out"
rm -rf ca.db && mkdir ca.db
: > ca.db/index.txt
echo 1000 > ca.db/serial

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

cat > ext.cnf <<'CNF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[wrongip_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.2, IP:::2
[dnsip_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:127.0.0.1, DNS:::1
[scan_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
crlDistributionPoints = URI:http://localhost/tlsq-test-ca.crl
[sni_a_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.tlsq.test
[sni_b_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:b.tlsq.test, DNS:*.b.tlsq.test
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[wronghost_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:example.org
[ca]
default_ca = test_ca
[test_ca]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
CNF

# CA NAME CN
mkca() {
	key "$1"
	openssl req -new -x509 -key "$1.key" -out "$1.pem" -days 3650 -subj "/CN=$2" \
		-config ext.cnf -extensions ca_ext 2>/dev/null
}

# leaf NAME CN EXT ISSUER [openssl ca date options]
leaf() {
	name=$1 cn=$2 ext=$3 issuer=$4
	shift 4
	key "$name"
	openssl req -new -key "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
	[ $# -gt 0 ] || set -- -days 365
	openssl ca -batch -notext -config ext.cnf -extfile ext.cnf -extensions "$ext" \
		-cert "$issuer.pem" -keyfile "$issuer.key" -in "$name.csr" -out "$name.pem" \
		"$@" 2>/dev/null
	rm -f "$name.csr"
}

mkca ca "tlsq test CA"
mkca other-ca "tlsq untrusted CA"
leaf server localhost server_ext ca
leaf client tlsq-test-client client_ext ca
leaf expired localhost server_ext ca -startdate 20200101000000Z -enddate 20210101000000Z
leaf wronghost example.org wronghost_ext ca
leaf wrongip localhost wrongip_ext ca
leaf dnsip 127.0.0.1 dnsip_ext ca
leaf future localhost server_ext ca -startdate 20990101000000Z -enddate 21000101000000Z
leaf untrusted localhost server_ext other-ca
leaf scan localhost scan_ext ca
leaf sni-a a.tlsq.test sni_a_ext ca
leaf sni-b b.tlsq.test sni_b_ext ca
cat server.pem ca.pem > server-chain.pem
chmod 600 ./*.key

# Check what the tests rely on.
openssl verify -CAfile ca.pem server.pem client.pem wronghost.pem scan.pem >/dev/null
openssl verify -CAfile ca.pem -verify_hostname localhost server.pem >/dev/null
openssl verify -CAfile ca.pem -verify_ip 127.0.0.1 server.pem >/dev/null
openssl verify -CAfile ca.pem -verify_ip ::1 server.pem >/dev/null
for ip in 127.0.0.1 ::1; do
	for bad in wrongip dnsip; do
		if openssl verify -CAfile ca.pem -verify_ip $ip $bad.pem >/dev/null 2>&1; then
			echo "make-pki: $bad.pem verifies at $ip, it must not" >&2
			exit 1
		fi
	done
done
for bad in expired untrusted future; do
	if openssl verify -CAfile ca.pem $bad.pem >/dev/null 2>&1; then
		echo "make-pki: $bad.pem verifies, it must not" >&2
		exit 1
	fi
done
echo "make-pki: test PKI in $PWD"
