// Package deploy holds the shop's deployment files: Kubernetes manifests
// (k8s/) and a keepalived configuration (keepalived/). Its test decodes
// every manifest into the Kubernetes API types and checks them against what
// the shop's roles serve; it is a package of its own so that the Kubernetes
// modules stay out of the shop's build.
package deploy
