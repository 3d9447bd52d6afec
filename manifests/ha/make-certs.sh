#!/usr/bin/env bash
# make-certs.sh DIR [SAN...]: the certificates of the HA shape's etcd, made
# with openssl, and the three Secrets that carry them (DIR/secrets.yaml,
# for kubectl apply -f). Each Secret is of type kubernetes.io/tls, with
# tls.crt, tls.key and ca.crt:
#
#   skydns-etcd-server  the members' certificate for clients (server auth)
#   skydns-etcd-peer    the members' certificate between themselves (server and client auth)
#   skydns-etcd-client  skydns's and kube2sky's client certificate (client auth, no SAN:
#                       etcd matches a client certificate's SANs against the address it
#                       connects from, and a pod's address is not known in advance)
#
# The SANs of the server and peer certificates are the members' fixed
# Service IPs and their /etc/hosts names (etcd.yaml), unless given as
# arguments in openssl's form (`IP:127.0.0.1 DNS:localhost`, as `make
# up-ha` gives them). A CA already in DIR (ca.crt, ca.key) is kept, so
# running this again renews the certificates without changing what every
# member and client trusts. ca.key signs everything: keep it out of the
# cluster.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [SAN...]" >&2; exit 2; }
dir=$1; shift
sans=("$@")
[ ${#sans[@]} -gt 0 ] || sans=(IP:10.0.0.11 IP:10.0.0.12 IP:10.0.0.13
	DNS:skydns-etcd-0.skydns-etcd DNS:skydns-etcd-1.skydns-etcd DNS:skydns-etcd-2.skydns-etcd)
NAMESPACE=${NAMESPACE:-kube-system}
DAYS=${DAYS:-365}
mkdir -p "$dir"
cd "$dir"
umask 077

if [ ! -f ca.crt ] || [ ! -f ca.key ]; then
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
	openssl req -x509 -new -key ca.key -subj /CN=skydns-etcd-ca -days 3650 -out ca.crt \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
fi

issue() { # name, extendedKeyUsage, SANs (comma-separated, or empty)
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=skydns-etcd-$1" -out "$1.csr"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$2"
		[ -z "$3" ] || echo "subjectAltName=$3"
	} >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
		-days "$DAYS" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
	rm "$1.csr" "$1.ext"
}
san=$(IFS=,; echo "${sans[*]}")
issue server serverAuth "$san"
issue peer serverAuth,clientAuth "$san"
issue client clientAuth ""

for name in server peer client; do
	cat <<EOS
---
apiVersion: v1
kind: Secret
metadata:
  name: skydns-etcd-$name
  namespace: $NAMESPACE
  labels:
    k8s-app: skydns-etcd
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$name.crt")
  tls.key: $(base64 -w0 "$name.key")
  ca.crt: $(base64 -w0 ca.crt)
EOS
done | tail -n +2 >secrets.yaml
echo "$dir: ca.crt ca.key server.{crt,key} peer.{crt,key} client.{crt,key}; kubectl apply -f $dir/secrets.yaml"
