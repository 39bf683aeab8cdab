package RustDesk::Cluster;

# The hosts of a cluster in the tests: host h is an nginx of its own on
# 127.0.0.h, on the same ports as the others (%%PORT_1%%: the main port,
# TCP and UDP; %%PORT_2%%: WebSocket; %%PORT_0%%: NAT test), all with one
# key directory and one Redis (%%PORT_9%%), named "h<h>".
#
#     host_start($t2, 2, $redis, keys => $dir);
#     my $b = stream_peer('ws', 2, 'some-id');

use warnings;
use strict;

use Exporter qw/ import /;

use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client qw/ random_bytes /;
use RustDesk::WebSocket;

our @EXPORT = qw/ host_ip host_conf host_start host_listeners stream_peer /;

sub host_ip { "127.0.0.$_[0]" }

# Options: keys (the key directory), directives (more for stream {}),
# servers (more server blocks).
sub host_conf {
	my ($h, %o) = @_;
	my $ip = host_ip($h);

	return stream_conf([ "rustdesk_key_dir $o{keys};",
			'rustdesk_database off;',
			'rustdesk_cluster redis://127.0.0.1:%%PORT_9%%;',
			"rustdesk_cluster_host h$h;", @{$o{directives} // []} ],
		srv_block([ "$ip:%%PORT_1%% reuseport",
			"$ip:%%PORT_1%% udp reuseport" ], 'rustdesk_rendezvous;'),
		srv_block([ "$ip:%%PORT_0%% reuseport" ], 'rustdesk_nat_test;'),
		srv_block([ "$ip:%%PORT_2%% reuseport" ],
			'rustdesk_rendezvous websocket;'), @{$o{servers} // []});
}

# Starts host h and waits until its workers are connected to Redis and
# worker 0 listens to the host's channel.
sub host_start {
	my ($t, $h, $redis, %o) = @_;

	$t->write_file_expand('nginx.conf', host_conf($h, %o));
	$t->run();

	$t->wait_log(qr/connected to redis/, 3);
	wait_until(sub { host_listeners($redis, $h) == 1 }, 5);

	return $t;
}

# How many listen to host h's channel.
sub host_listeners {
	my ($redis, $h) = @_;
	my $r = eval { $redis->cmd('PUBSUB', 'NUMSUB', "rustdesk:host:h$h") };
	return ref $r ? $r->[1] : 0;
}

# A peer registered on a stream ('tcp' or 'ws') of host h, kept open:
# { id, pk, c }; dies unless RegisterPk is answered OK.
sub stream_peer {
	my ($kind, $h, $id, $pk) = @_;
	$pk //= random_bytes(32);

	my $c = $kind eq 'ws'
		? RustDesk::WebSocket->connect(port(2), PeerHost => host_ip($h))
		: RustDesk::Client->tcp(port(1), PeerHost => host_ip($h));

	$c->send_msg(register_pk => { id => $id, uuid => "uuid-$id", pk => $pk });
	my ($type, $m) = $c->recv_msg(3);

	die "no registration of $id: " . ($type // 'nothing') . "\n"
		unless ($type // '') eq 'register_pk_response'
			&& !($m->{result} // 0);

	return { id => $id, pk => $pk, c => $c };
}

1;
