#!/usr/bin/perl

# Cluster mode's channel between hosts (Redis pub/sub, one channel per
# host): worker 0 of each host listens to "rustdesk:host:<host>" on a
# connection of its own, again after Redis comes back; a message there
# asking the host to send a PunchHole, FetchLocalAddr or RequestRelay to
# one of its peers is sent to the peer as the host reaches it: over UDP
# from the host's rendezvous port, or on the peer's TCP or WebSocket
# stream, whichever worker holds it.  Anything else is ignored, said at
# warn.  (No host publishes such a message yet: the test does.)
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text encode_msg mangle demangle /;
use RustDesk::WebSocket;
use RustDesk::Redis;
use RustDesk::Cluster;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(14);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));

my $keys = $t->testdir() . '/keys';

host_start($t, 1, $redis, keys => $keys);
host_start($t2, 2, $redis, keys => $keys);

###############################################################################

# 1. worker 0 of each host listens to its host's channel

is(host_listeners($redis, 1) . '/' . host_listeners($redis, 2), '1/1',
	'one listener a host (worker 0)');
is(scalar(grep { /^ngx_rustdesk:h2:\d+:listen$/ } $redis->client_names()),
	1, 'named as the listener in CLIENT LIST');

###############################################################################

# 2. a PunchHole for a UDP peer of host 2: sent from host 2's UDP port

my $b = RustDesk::Client->udp_peer(port(1), 'chan-udp-1',
	PeerHost => '127.0.0.2');
my $a = mangle('192.0.2.9', 5555);

to_peer('h2', $b->{id}, punch_hole => { socket_addr => $a,
	relay_server => 'relay.example:21117', nat_type => 1 });

my ($type, $m) = $b->{udp}->recv_msg(3);
is($type // 'nothing', 'punch_hole', 'UDP peer: PunchHole from its host');
is(join(' ', demangle($m->{socket_addr} // '')), '192.0.2.9 5555',
	'with the requester\'s address as sent');
is($m->{relay_server} // '', 'relay.example:21117', 'and its relay');

to_peer('h2', $b->{id}, fetch_local_addr => { socket_addr => $a,
	relay_server => 'relay.example:21117' });
($type) = $b->{udp}->recv_msg(3);
is($type // 'nothing', 'fetch_local_addr', 'UDP peer: FetchLocalAddr');

###############################################################################

# 3. a RequestRelay for peers on streams: on their stream

for my $kind (qw/ tcp ws /) {
	my $id = "chan-$kind-1";
	my $c = stream_peer($kind, 2, $id)->{c};

	to_peer('h2', $id, request_relay => { id => $id, uuid => 'relay-uuid',
		socket_addr => $a, relay_server => 'relay.example:21117' });

	($type, $m) = $c->recv_msg(3);
	is(($type // 'nothing') . ' ' . ($m->{uuid} // ''),
		'request_relay relay-uuid', "$kind peer: RequestRelay on its stream");
}

###############################################################################

# 4. what is not for a peer, for nobody, or malformed: ignored, said

to_peer('h2', $b->{id}, register_pk => { id => 'x', uuid => 'u', pk => 'p' });
is($t2->wait_log(qr/\[warn\].*cluster message for peer "chan-udp-1" that is not for a peer ignored/),
	1, 'a message not for a peer: ignored');

to_peer('h2', 'chan-nobody', punch_hole => { socket_addr => $a });
is($t2->wait_log(qr/PunchHole from another host for peer "chan-nobody", not online here/),
	1, 'for a peer not online here: logged');

$redis->cmd('PUBLISH', 'rustdesk:host:h2', "\x01junk");
is($t2->wait_log(qr/cluster message of unknown kind 1 on rustdesk:host:h2 ignored/),
	1, 'an unknown kind: ignored');

###############################################################################

# 5. Redis comes back: listening again

$redis->restart();

is(wait_value(sub { host_listeners($redis, 1) . '/'
		. host_listeners($redis, 2) }, '1/1', 15),
	'1/1', 'listening again after Redis came back');

to_peer('h2', $b->{id}, punch_hole => { socket_addr => $a });
($type) = $b->{udp}->recv_msg(3);
is($type // 'nothing', 'punch_hole', 'and passing messages on');

$t2->check_log();

###############################################################################




sub to_peer {
	my ($host, $id, $type, $fields) = @_;
	$redis->cmd('PUBLISH', "rustdesk:host:$host",
		'P' . chr(length $id) . $id . encode_msg($type, $fields));
}
