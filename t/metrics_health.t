#!/usr/bin/perl

# GET /health (README "Metrics and health"): 200 "ok" while the zones, the
# key files and the database are usable; 503 with the reason otherwise,
# and 200 again once it is fixed: the database file made read-only for
# the workers (the same condition makes a worker that opens it now fail to
# write: shown after a reload), the database's write lock held by another
# process, a key file gone, a zone full of online peers.

use warnings;
use strict;

use POSIX ();
use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value /;
use RustDesk::Conf;
use RustDesk::Client qw/ random_bytes /;
use RustDesk::Metrics;
use RustDesk::Sqlite qw/ has_sqlite3 sql become /;

my $t = Test::Nginx->new()->has();

plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();
plan(skip_all => 'needs root: the workers run as another user than the '
	. 'files\' owner') unless $> == 0;

$t->plan(19);

my $d = $t->testdir();
my $DB = "$d/keys/db_v2.sqlite3";

# the database beside the keys (the default): the workers own the directory

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_relay_servers 127.0.0.1:%%PORT_1%%;',
	'rustdesk_ip_blocker 1000 1000;',
], srv_rendezvous(0), srv_relay(1),
	srv_block([ '127.0.0.1:%%PORT_2%%' ], 'rustdesk_metrics;'),
	srv_block([ '127.0.0.1:%%PORT_3%%' ], 'rustdesk_metrics timeout=300ms;')));

$t->run();

my $H = port(2);

is(health(), '200 ok', 'all is well: 200 ok');

my ($status, $h, $body) = http_get($H, '/health', method => 'HEAD');
is("$status [$body] $h->{'content-length'}", '200 [] 3',
	'HEAD: the status, no body');

###############################################################################

# the database file read-only for the workers (they run as nobody, the
# file is theirs)

my $worker_uid = (stat $DB)[4];
isnt($worker_uid, 0, 'the database belongs to the workers\' user');

chmod 0444, $DB;

like(wait_health(qr/^503/),
	qr/^503 database ".*db_v2\.sqlite3" cannot be written: .*read-?only/,
	'read-only: 503 with the reason');

like(sql($DB, "insert into peer (guid, id, uuid, pk, info) values "
	. "(x'00', 'probe', x'00', x'00', '{}')"),
	qr/readonly database/, 'read-only: a connection opened now, as the '
	. 'workers\' user, cannot write');

# new workers open it now: their writes fail, as /health said

$t->reload();

is(reg_pk('127.0.0.21', 'health01'), 7,
	'read-only, after a reload: RegisterPk gets SERVER_ERROR');

chmod 0644, grep { -e } map { "$DB$_" } '', '-wal', '-shm';

is(wait_health(qr/^200/), '200 ok', 'mode restored: 200 ok');

$t->reload();

is(reg_pk('127.0.0.22', 'health02'), 0, 'mode restored, after a reload: OK');

###############################################################################

# another process holds the database's write lock

my $lock = lock_db($DB);

like(wait_health(qr/^503/),
	qr/^503 database ".*" cannot be written: database is locked$/,
	'locked: 503 with the reason');

# the check waits for the lock (a second): a listener whose timeout is
# shorter answers without it

my ($ls, undef, $lb) = http_get(port(3), '/health');
like("$ls $lb", qr/^503 health checks did not finish within 300 ms$/m,
	'locked, a listener with timeout=300ms: 503, the check not finished');

unlock_db($lock);

is(wait_health(qr/^200/), '200 ok', 'lock released: 200 ok');

###############################################################################

# the file replaced under the workers (a copy put in its place): their
# connections are on the old one, and their writes are refused

system('cp', '-p', $DB, "$DB.copy") == 0 or die "cp: $?";
rename "$DB.copy", $DB;

like(wait_health(qr/^503/),
	qr/^503 database ".*" cannot be written: the file was deleted or replaced/,
	'replaced: 503 with the reason');

$t->reload();

is(wait_health(qr/^200/), '200 ok', 'replaced, after a reload: 200 ok');

###############################################################################

# a key file gone: nginx would make a new pair at its next start

rename "$d/keys/id_ed25519.pub", "$d/keys/moved.pub";

like(wait_health(qr/^503/),
	qr/^503 key file ".*keys\/id_ed25519\.pub" is missing$/,
	'public key file gone: 503 with the reason');

rename "$d/keys/moved.pub", "$d/keys/id_ed25519.pub";

is(wait_health(qr/^200/), '200 ok', 'key file back: 200 ok');

###############################################################################

# a zone full of online peers refuses new ones: 503; when they are offline
# again (rustdesk_online_timeout), a registration makes room: 200

$t->stop();
$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database off;',
	'rustdesk_zone small:64k;',
	'rustdesk_online_timeout 10s;',
	'rustdesk_ip_blocker 1000 1000;',
], srv_rendezvous(0),
	srv_block([ '127.0.0.1:%%PORT_2%%' ], 'rustdesk_metrics;')));
$t->run();

is(health(), '200 ok', 'small zone, empty: 200 ok');

my ($ok, $full, $n) = (0, 0, 0);

FILL: for my $src (1 .. 60) {
	my $u = RustDesk::Client->udp(port(0), LocalAddr => "127.0.2.$src");
	for (1 .. 25) {
		my $r = reg_pk_on($u, sprintf('full%05d', ++$n));
		$r == 0 ? $ok++ : $full++;
		last FILL if $full;
	}
}

ok($ok > 100 && $full, "zone full: $ok registered, then refused");

like(health(), qr/^503 rendezvous zone "small" is full: new peers are refused$/,
	'zone full: 503 with the reason');

# once the peers are offline, a new registration takes an offline one's room

is(wait_value(sub {
	reg_pk('127.0.3.1', sprintf('later%05d', ++$n));
	health();
}, '200 ok', 20), '200 ok', 'room made again: 200 ok');

###############################################################################

sub health {
	my ($status, $h, $body) = http_get($H, '/health');
	$body =~ s/\n\z//;
	return ($status // 'closed') . " $body";
}

# /health once it matches (the checks run on whichever worker answers,
# each check as it finds things now: the first answer should do)
sub wait_health {
	my ($re) = @_;
	my $got;
	wait_until(sub { ($got = health()) =~ $re }, 5);
	return $got;
}

# RegisterPk from a new socket on ip: the result (-1: no answer)
sub reg_pk {
	my ($ip, $id) = @_;
	return reg_pk_on(RustDesk::Client->udp(port(0), LocalAddr => $ip), $id);
}

sub reg_pk_on {
	my ($u, $id) = @_;
	$u->send_msg(register_pk => { id => $id, uuid => "uuid-$id",
		pk => random_bytes(32) });
	my ($type, $m) = $u->recv_msg(5);
	return $type ? ($m->{result} // 0) : -1;
}

# The write lock taken by the sqlite3 CLI, as the file's owner; held until
# unlock_db().
sub lock_db {
	my ($file) = @_;
	my $uid = (stat $file)[4];
	my $flag = "$d/keys/db-test-locked";

	my $pid = open(my $fh, '|-') // die "fork: $!\n";

	if ($pid == 0) {
		become($uid);
		exec('sqlite3', '-batch', $file) or POSIX::_exit(127);
	}

	$fh->autoflush(1);
	print $fh "begin immediate;\n.shell echo locked > $flag\n";

	wait_until(sub { -s $flag }, 5);

	return $fh;
}

sub unlock_db {
	my ($fh) = @_;
	print $fh "rollback;\n.quit\n";
	close $fh;
	unlink "$d/keys/db-test-locked";
}

###############################################################################
