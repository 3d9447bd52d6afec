// Package etcdfake holds what the unit tests' stand-ins for etcd share.
package etcdfake

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Alarms is an alarm list: etcd's NOSPACE alarm raised by its one member,
// or no alarm.
func Alarms(noSpace bool) *clientv3.AlarmResponse {
	resp := &clientv3.AlarmResponse{}
	if noSpace {
		resp.Alarms = []*pb.AlarmMember{{MemberID: 1, Alarm: pb.AlarmType_NOSPACE}}
	}
	return resp
}
