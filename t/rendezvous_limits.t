#!/usr/bin/perl

# Time limits of the rendezvous server (PROTOCOL.md section 6): new ids
# per source IP per day (with a small rustdesk_ip_blocker limit, so that it
# is reached without waiting past the 30-a-minute limit), and a peer going
# offline rustdesk_online_timeout (hbbs: 30 s) after its last registration;
# the timeout is set shorter here, and must be within its range.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client;

my $t = Test::Nginx->new()->has()->plan(12);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key "";',
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_ip_blocker 1000 5;',
	'rustdesk_online_timeout 4s;',
], srv_hbbs(1, 0)));

$t->run();

# new ids from one IP: the first request only opens the IP's entry, then
# ids are recorded until more than 5 are known; after that only known ids
# pass

my $u = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.61');

my @r = map { reg_pk($u, "limit$_") } 1 .. 8;
is("@r", '0 0 0 0 0 0 0 4', 'the 8th new id from one IP is refused');
is(reg_pk($u, 'limit2'), 0, 'a known id still passes');
is(reg_pk($u, 'limit9'), 4, 'another new id is refused');

my $v = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.62');
is(reg_pk($v, 'limit9'), 0, 'another IP is not affected');

like($t->read_file('error.log'),
	qr/too many key registrations from this address, refused peer "limit8"/,
	'refusal logged');

# online for rustdesk_online_timeout (4 s) after the last registration

my $b = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.63');
reg_pk($b, 'expiring1');
$b->send_msg(register_peer => { id => 'expiring1' });
$b->recv_msg();

is(online('expiring1'), 1, 'online after registering');

# what is tested is the time passing: these are sleeps
select undef, undef, undef, 2;
is(online('expiring1'), 1, 'still online after 2 s');

select undef, undef, undef, 3;
is(online('expiring1'), 0, 'offline after 5 s');

my $a = RustDesk::Client->tcp(port(1));
$a->send_msg(punch_hole_request => { id => 'expiring1' });
my (undef, $m) = $a->recv_msg();
is($m && $m->{failure}, 2, 'punch hole: OFFLINE');

# the range: 1s to 1h

for my $v (qw/ 0 999ms 61m /) {
	$t->write_file('range.conf', $t->read_file('nginx.conf')
		=~ s/rustdesk_online_timeout 4s/rustdesk_online_timeout $v/r);
	my ($rc, $out) = $t->test_config('range.conf');
	like($out, qr/"rustdesk_online_timeout" must be between 1s and 1h/,
		"rustdesk_online_timeout $v refused");
}

sub reg_pk {
	my ($c, $id) = @_;
	$c->send_msg(register_pk => { id => $id, uuid => "u-$id",
		pk => 'k' x 32 });
	my ($type, $m) = $c->recv_msg();
	return -1 unless $type;
	return $m->{result} // 0;
}

sub online {
	my ($id) = @_;
	my $c = RustDesk::Client->tcp(port(0));
	$c->send_msg(online_request => { id => 'x', peers => [ $id ] });
	my (undef, $m) = $c->recv_msg();
	return -1 unless $m;
	return (ord($m->{states} // "\0") & 0x80) ? 1 : 0;
}
