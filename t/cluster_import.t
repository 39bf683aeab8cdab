#!/usr/bin/perl

# scripts/rustdesk-cluster-import: the ids of an existing db_v2.sqlite3
# bound to their uuids in the cluster's Redis (if bound to none yet, as
# hosts bind them), so that no host lets another uuid take them; an id
# bound already keeps its binding; their keys recorded, unless bound to
# another uuid or recorded already (a host's key is newer); their
# created_at recorded, unless bound to another uuid, in another form, or
# the cluster has an earlier one (a later one is replaced: the first
# registration is the earliest), and a host's new row takes it; a second
# run changes nothing.  Its errors:
# wrong usage (2), no Redis, a wrong password, not a database (1).
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ random_bytes /;
use RustDesk::Redis;
use RustDesk::Cluster;
use RustDesk::Sqlite qw/ has_sqlite3 sql /;

my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();
plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();

$t->plan(27);

my $IMPORT = "$Test::Nginx::ROOT/scripts/rustdesk-cluster-import";
my $d = $t->testdir();

my $redis = RustDesk::Redis->start($d, port(9), requirepass => 's3cret');
my $url = 'redis://:s3cret@127.0.0.1:' . port(9);

# a database as rustdesk-server makes it, with six peers (one without
# a uuid, one with a created_at of another form) and binary uuids

my $db = "$d/db_v2.sqlite3";
sql($db, q{create table peer (guid blob primary key not null,
	id varchar(100) not null, uuid blob not null, pk blob not null,
	created_at datetime not null default(current_timestamp), user blob,
	status tinyint, note varchar(300), info text not null);
	insert into peer (guid, id, uuid, pk, created_at, info) values
		(X'01', 'import-1', CAST('uuid-one' AS BLOB), X'AA',
			'2021-03-04 05:06:07', '{}'),
		(X'02', 'import-2', X'00FF10', X'BB', '2021-01-01 00:00:02', '{}'),
		(X'03', 'import-3', X'', X'CC', '2021-01-01 00:00:03', '{}'),
		(X'04', 'import-4', CAST('uuid-four' AS BLOB), X'DD',
			'2021-01-01 00:00:04', '{}'),
		(X'05', 'import-5', CAST('uuid-five' AS BLOB), X'EE',
			'2021-01-01 00:00:05', '{}'),
		(X'06', 'import-6', CAST('uuid-six' AS BLOB), X'FF',
			'2021-01-01T00:00:06Z', '{}');});

# bound before: to another uuid; by a host, before keys were shared, in
# 2020; by a host, with a newer key, in 2024

$redis->cmd('SET', 'rustdesk:uuid:import-2', 'bound-before');
$redis->cmd('SET', 'rustdesk:uuid:import-4', 'uuid-four');
$redis->cmd('SET', 'rustdesk:created:import-4', '2020-06-07 08:09:10');
$redis->cmd('SET', 'rustdesk:uuid:import-5', 'uuid-five');
$redis->cmd('SET', 'rustdesk:pk:import-5', 'newer');
$redis->cmd('SET', 'rustdesk:created:import-5', '2024-06-07 08:09:10');

is(import($url, $db), "5 ids read, 2 bound, 3 bound already (left as they "
	. "were), key recorded for 3, created_at for 2 (1 created_at not of "
	. "the form YYYY-MM-DD HH:MM:SS, not recorded)\n",
	'imported: two bound, three bound before kept, three keys, two times');
is($redis->cmd('GET', 'rustdesk:uuid:import-1'), 'uuid-one', 'the uuid\'s bytes');
is($redis->cmd('GET', 'rustdesk:uuid:import-2'), 'bound-before',
	'a binding there before kept');
is($redis->cmd('GET', 'rustdesk:uuid:import-3'), undef, 'no uuid, no binding');
is($redis->cmd('GET', 'rustdesk:pk:import-1'), "\xAA", 'the key\'s bytes');
is($redis->cmd('GET', 'rustdesk:pk:import-2'), undef,
	'bound to another uuid: not its key');
is($redis->cmd('GET', 'rustdesk:pk:import-4'), "\xDD",
	'bound to its uuid, without a key: the key');
is($redis->cmd('GET', 'rustdesk:pk:import-5'), 'newer',
	'a key there before (a host\'s): kept');
is($redis->cmd('GET', 'rustdesk:created:import-1'), '2021-03-04 05:06:07',
	'the created_at');
is($redis->cmd('GET', 'rustdesk:created:import-2'), undef,
	'bound to another uuid: not its created_at');
is($redis->cmd('GET', 'rustdesk:created:import-4'), '2020-06-07 08:09:10',
	'an earlier one there before: kept');
is($redis->cmd('GET', 'rustdesk:created:import-5'), '2021-01-01 00:00:05',
	'a later one there before: replaced by the database\'s');
is($redis->cmd('GET', 'rustdesk:created:import-6'), undef,
	'another form: not recorded');
is(import($url, $db), "5 ids read, 0 bound, 5 bound already (left as they "
	. "were), key recorded for 0, created_at for 0 (1 created_at not of "
	. "the form YYYY-MM-DD HH:MM:SS, not recorded)\n",
	'a second run changes nothing');

like(import("$url/2", $db, '--prefix', 'other:'),
	qr/ 5 bound,.* key recorded for 5, created_at for 4 /,
	'another database and prefix');
is($redis->cmd('GET', 'other:created:import-1'), undef,
	'not in this one');

# a host of the cluster refuses another uuid for an imported id; its new
# row of one takes the imported created_at

mkdir "$d/host" or die "mkdir: $!\n";
my $hdb = "$d/host/db_v2.sqlite3";

host_start($t, 1, $redis, keys => "$d/keys", database => $hdb,
	directives => [ 'rustdesk_cluster_password s3cret;' ]);

is(register('import-1', 'uuid-other'), 2,
	'a host refuses another uuid for an imported id (UUID_MISMATCH)');
is($t->wait_log(qr/peer "import-1" is registered with another uuid in the cluster/),
	1, 'for the binding');
is(register('import-1', 'uuid-one'), 0, 'and takes its own (OK)');
Test::Nginx::wait_until(sub {
	($redis->cmd('GET', 'rustdesk:pk:import-1') // '') eq 'K' x 32 }, 3);
is($redis->cmd('GET', 'rustdesk:pk:import-1'), 'K' x 32,
	'with its key now, in the cluster');
is(sql($hdb, "select created_at from peer where id = 'import-1'"),
	'2021-03-04 05:06:07', 'the host\'s new row: the imported created_at');
is(register('import-6', 'uuid-six'), 0, 'an id imported without a time: OK');
like(sql($hdb, "select created_at from peer where id = 'import-6'"),
	qr/^20[2-9]\d-\d\d-\d\d \d\d:\d\d:\d\d$/, 'its new row: now');

# the errors

is(import('http://x', $db), "rustdesk-cluster-import: \"http://x\" is not a "
	. "redis://[[user]:password\@]host[:port][/db] or "
	. "redis-sentinel://host[:port][,...]/name[/db] URL\n[1]",
	'not a redis URL');
is(import('redis://:wrong@127.0.0.1:' . port(9), $db),
	"rustdesk-cluster-import: redis refused the password: -WRONGPASS "
	. "invalid username-password pair or user is disabled.\n[1]",
	'a wrong password');
like(import($url, "$d/nothing"), qr/no database .*\n\[1\]$/, 'no file');
like(import($url), qr/^usage: .*\[2\]$/s, 'wrong usage');

###############################################################################

# RegisterPk over UDP on host 1: the result's number.
sub register {
	my ($id, $uuid) = @_;
	my $c = RustDesk::Client->udp(port(1), PeerHost => '127.0.0.1');
	$c->send_msg(register_pk => { id => $id, uuid => $uuid,
		pk => 'K' x 32 });
	my ($type, $m) = $c->recv_msg(3);
	return ($type // '') eq 'register_pk_response' ? $m->{result} // 0
		: 'no answer';
}

# The script's output (stdout and stderr), and "[status]" when not 0.
sub import {
	my (@a) = @_;
	my $pid = open(my $fh, '-|') // die "fork: $!\n";

	if ($pid == 0) {
		open STDERR, '>&', \*STDOUT;
		exec($IMPORT, @a) or POSIX::_exit(127);
	}

	local $/;
	my $out = <$fh> // '';
	close $fh;

	return $? >> 8 ? $out . '[' . ($? >> 8) . ']' : $out;
}
