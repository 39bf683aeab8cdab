#!/usr/bin/perl

# nginx's stream access log with the $rustdesk_* variables (README "Access
# log"): a line per rendezvous datagram or connection with the message,
# its result and the ids it named, heartbeats kept out with "if="; one line
# per relayed session, written by the side that waited, with both
# addresses, the uuid, the id of the peer asked to relay (when this nginx
# brokered it), the bytes each way, the pair's duration and why it ended,
# whichever worker each side landed on.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client qw/ random_bytes /;
use RustDesk::Relay qw/ read_exact /;
use RustDesk::RelayTest;
use RustDesk::Session;

my $t = Test::Nginx->new()->has()->plan(18);

my $RENDEZVOUS_FORMAT = '$remote_addr:$remote_port $rustdesk_transport $rustdesk_message '
	. '$rustdesk_result id=$rustdesk_id peer=$rustdesk_peer_id '
	. 'uuid=$rustdesk_uuid';
my $RELAY_FORMAT = '$remote_addr:$remote_port $rustdesk_transport $rustdesk_message '
	. '$rustdesk_result uuid=$rustdesk_uuid peer=$rustdesk_peer_id '
	. 'partner=$rustdesk_partner_addr sent=$rustdesk_partner_bytes_sent '
	. 'received=$rustdesk_partner_bytes_received time=$rustdesk_pair_time';

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database off;',
	'rustdesk_relay_servers 127.0.0.1:%%PORT_1%%;',
	'rustdesk_relay_pair_timeout 2s;',
	'rustdesk_relay_idle_timeout 2s;',
	"log_format rendezvous '$RENDEZVOUS_FORMAT';",
	"log_format relay '$RELAY_FORMAT';",
	'map "$rustdesk_message:$rustdesk_result" $rustdesk_loggable {',
	'    "RegisterPeer:OK"  0;',
	'    default            1;',
	'}',
], srv_rendezvous(0, directives => [
	'access_log %%TESTDIR%%/rendezvous.log rendezvous if=$rustdesk_loggable;',
]), srv_block([ '127.0.0.1:%%PORT_1%% reuseport' ], 'rustdesk_relay;',
	'access_log %%TESTDIR%%/relay.log relay;')));

$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');

###############################################################################

# rendezvous: a registration is logged, its heartbeats are not

my $alpha = RustDesk::Client->udp_peer(port(0), 'alpha1');
my $alpha_addr = $alpha->{udp}->addr();

$alpha->{udp}->send_msg(register_peer => { id => 'alpha1', serial => 0 });
$alpha->{udp}->recv_msg();

# a datagram after the heartbeats: once its line is there, so would theirs be
my $marker = RustDesk::Client->udp_peer(port(0), 'marker1');

ok(rendezvous_line(qr/ udp RegisterPk OK id=marker1 /),
	'a registration: its line');

is(join("\n", grep { /id=alpha1 / }
		split /\n/, $t->read_file('rendezvous.log')),
	"$alpha_addr udp RegisterPk OK id=alpha1 peer=- uuid=-",
	'RegisterPk logged with the id, RegisterPeer heartbeats kept out');

# what changes something is logged: a RegisterPk with another uuid

my $u = RustDesk::Client->udp(port(0));
$u->send_msg(register_pk => { id => 'alpha1', uuid => 'another',
	pk => random_bytes(32) });
$u->recv_msg();

ok(rendezvous_line(qr/^\Q${\ $u->addr() }\E udp RegisterPk UUID_MISMATCH id=alpha1 /m),
	'RegisterPk refused: UUID_MISMATCH with the id');

# punch requests, whatever their result

my $a = RustDesk::Client->tcp(port(0));
$a->send_msg(punch_hole_request => { id => 'alpha1', nat_type => 1,
	licence_key => $key });
my ($type) = $alpha->{udp}->recv_msg();
my $a_addr = $a->addr();
$a->close();

# B and A share the IP 127.0.0.1: FetchLocalAddr rather than PunchHole
is($type, 'fetch_local_addr', 'B hears the request');
ok(rendezvous_line(qr/^\Q$a_addr\E tcp PunchHoleRequest OK id=- peer=alpha1 /m),
	'PunchHoleRequest passed on: OK, with the peer asked for');

$a = RustDesk::Client->tcp(port(0));
$a->send_msg(punch_hole_request => { id => 'nobody', licence_key => $key });
$a->recv_msg();
$a->close();

ok(rendezvous_line(qr/ tcp PunchHoleRequest ID_NOT_EXIST id=- peer=nobody /),
	'PunchHoleRequest for an unknown id: ID_NOT_EXIST');

$u->send_raw("\xff\xff\xff");
ok(rendezvous_line(qr/^\Q${\ $u->addr() }\E udp - MALFORMED /m),
	'a malformed datagram: MALFORMED');

###############################################################################

# a relayed session brokered by this nginx: the rendezvous logs the
# RequestRelay and the RelayResponse with the uuid, the relay's one line
# has the id of the peer asked to relay

is(RustDesk::Session::relayed_session(rendezvous_port => port(0),
	relay_port => port(1), key => $key), '', 'a relayed session');

my ($id, $uuid) = rendezvous_line(
	qr/ tcp RequestRelay OK id=- peer=(\S+) uuid=(\S+)$/m) =~
	/peer=(\S+) uuid=(\S+)$/;
ok(defined $uuid && rendezvous_line(
	qr/ tcp RelayResponse OK id=\Q$id\E peer=- uuid=\Q$uuid\E$/m),
	'RequestRelay and RelayResponse logged with the uuid and the id');

my @lines = relay_lines($uuid, 1);
is(scalar @lines, 1, 'the relayed session: one line');
like($lines[0] // '', qr/^127\.0\.0\.1:\d+ tcp RequestRelay paired uuid=\Q$uuid\E peer=\Q$id\E partner=127\.0\.0\.1:\d+ sent=(?:65536 received=12|12 received=65536) time=\d+\.\d{3}$/,
	'its fields: paired, the brokered id, the partner, bytes each way, '
	. 'duration');

###############################################################################

# pairs not brokered here, both sides on either worker: one line each, by
# the side that waited, with exact byte counts each way

my @pairs = relay_pairs_on_workers($t, port(1), 'pair', 6, '127.0.0.3',
	'127.0.0.4');

for my $p (@pairs) {
	local $SIG{PIPE} = 'IGNORE';
	$p->{a}->syswrite('a' x 1000);
	$p->{b}->syswrite('b' x 500);
	read_exact($p->{b}, 1000, 5);
	read_exact($p->{a}, 500, 5);
	$p->{partner} = $p->{b}->sockhost() . ':' . $p->{b}->sockport();
	$p->{remote} = $p->{a}->sockhost() . ':' . $p->{a}->sockport();
}

close_pairs($t, @pairs);

my @bad;

for my $p (@pairs) {
	my @l = relay_lines($p->{uuid}, 1);
	push @bad, "$p->{uuid}: " . scalar(@l) . " lines" unless @l == 1;
	push @bad, "$p->{uuid}: $l[0]" unless ($l[0] // '') =~
		/^\Q$p->{remote}\E tcp RequestRelay paired uuid=\Q$p->{uuid}\E peer=- partner=\Q$p->{partner}\E sent=1001 received=501 time=\d+\.\d{3}$/;
}

is(scalar @pairs, 6, '6 pairs over both workers');
is(join("\n", @bad), '', 'each pair: one line, exact fields');

my $cross = $t->log_count(qr/paired with a connection from worker/);
note("$cross pairs had their sides on different workers");

# why a session ended: idle, no partner, not a relay request

my ($p) = relay_pairs_on_workers($t, port(1), 'idle', 1);

ok(relay_lines($p->{uuid}, 1, 10), 'an idle pair is closed');
like((relay_lines($p->{uuid}, 1))[0] // '',
	qr/ RequestRelay idle_timeout uuid=\Q$p->{uuid}\E .* sent=1 received=1 time=[2-9]\.\d{3}$/,
	'... its line: idle_timeout');
close_pairs($t, $p);

my $lone = relay_side(port(1), 'lone');
ok(relay_lines('lone', 1, 10), 'no partner came');
like((relay_lines('lone', 1))[0] // '',
	qr/^127\.0\.0\.1:\d+ tcp RequestRelay no_partner uuid=lone peer=- partner=- sent=- received=- time=-$/,
	'... its line: no_partner, no pair fields');
close $lone;

my $c = RustDesk::Client->tcp(port(1));
$c->send_msg(test_nat_request => { serial => 0 });
$c->recv_msg(2);

my $c_addr = $c->addr();

ok(wait_until(sub { $t->read_file('relay.log')
		=~ /^\Q$c_addr\E tcp - bad_request uuid=- /m }),
	'a relay client that sends something else: bad_request');
$c->close();

###############################################################################

# The rendezvous log's line that matches, once it is there ('' after 5 s).
sub rendezvous_line {
	my ($re) = @_;
	my $line = '';

	wait_until(sub {
		($line) = $t->read_file('rendezvous.log') =~ /^(.*$re.*)$/m;
		defined $line;
	});

	return $line // '';
}

# The relay log's lines for uuid (a regex), once there are at least $n
# (waiting up to $timeout seconds, 5 by default; then what there is).
sub relay_lines {
	my ($uuid, $n, $timeout) = @_;
	my @l;

	wait_until(sub {
		@l = grep { / uuid=$uuid / } split /\n/, $t->read_file('relay.log');
		@l >= $n;
	}, $timeout);

	return @l;
}

###############################################################################
