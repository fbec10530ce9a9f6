package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveStatic takes the static member (c.InstanceID, member id memberID) out of group
// for good, through cl (any client but the closed member's own; nil: a short-lived one
// from c). Call it after a clean
// shutdown closed the member's client: a static member does not leave on close (its
// restart would take its place), so without this its partitions would stay unowned for
// the session timeout. memberID is the member's id before it closed
// (Client.GroupMetadata): a leave under it cannot remove a new member that already took
// the instance id. A member that is already gone or replaced is not an error. A no-op
// without an instance id or member id.
func (c Config) LeaveStatic(ctx context.Context, cl *kgo.Client, group, memberID string) error {
	if c.InstanceID == "" || memberID == "" {
		return nil
	}
	if cl == nil {
		own, err := kgo.NewClient(c.Opts()...)
		if err != nil {
			return fmt.Errorf("leave group %s: %w", group, err)
		}
		defer own.Close()
		cl = own
	}
	var code int16
	if c.GroupProtocol == GroupProtocolConsumer {
		// The member's own leave (epoch -2) only parked its partitions for its restart.
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.InstanceID, req.MemberEpoch = group, memberID, &c.InstanceID, -1
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("leave group %s: %w", group, err)
		}
		code = resp.ErrorCode
	} else {
		// Kafka refuses a leave whose member id is not the instance's current one
		// (FENCED_INSTANCE_ID), but not every broker does (kfake removes whoever holds
		// the instance id): check first that no successor took it.
		if current, err := staticMemberID(ctx, cl, group, c.InstanceID); err != nil || current != memberID {
			return err
		}
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group = group
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID, m.InstanceID = memberID, &c.InstanceID
		reason := "static member shutting down"
		m.Reason = &reason
		req.Members = append(req.Members, m)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("leave group %s: %w", group, err)
		}
		code = resp.ErrorCode
		for _, m := range resp.Members {
			if code == 0 {
				code = m.ErrorCode
			}
		}
	}
	err := kerr.ErrorForCode(code)
	switch {
	case err == nil, errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.FencedInstanceID),
		errors.Is(err, kerr.GroupIDNotFound), errors.Is(err, kerr.FencedMemberEpoch):
		return nil
	}
	return fmt.Errorf("leave group %s as %s: %w", group, c.InstanceID, err)
}

// staticMemberID returns the member id that holds instanceID in the classic group
// group ("" if none).
func staticMemberID(ctx context.Context, cl *kgo.Client, group, instanceID string) (string, error) {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", fmt.Errorf("describe group %s: %w", group, err)
	}
	for _, g := range resp.Groups {
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
			return "", fmt.Errorf("describe group %s: %w", group, err)
		}
		for _, m := range g.Members {
			if m.InstanceID != nil && *m.InstanceID == instanceID {
				return m.MemberID, nil
			}
		}
	}
	return "", nil
}
