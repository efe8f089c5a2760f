package balancer

import "time"

// Member is one node of a Cluster as this node sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is the node's gossip address (host:port).
	Addr string `json:"addr"`
	// State is "alive", "suspect", "dead" or "left".
	State string `json:"state"`
	// Self marks this node.
	Self bool `json:"self,omitempty"`
}

// PeerView is what one peer last reported about one endpoint of one pool.
type PeerView struct {
	Node     string    `json:"node"`
	Pool     string    `json:"pool"`
	Endpoint string    `json:"endpoint"`
	State    State     `json:"state"`
	Until    time.Time `json:"until,omitzero"` // end of an ejection
	Updated  time.Time `json:"updated"`
}

// ClusterView is what a stats page shows of a cluster: its members and
// what each peer sees of the endpoints. *Cluster implements it.
type ClusterView interface {
	Members() []Member
	PeerViews() []PeerView
}
