package RustDesk::Redis;

# A Redis server of a test's own (Debian's redis-server) on a loopback
# port, and a small RESP client to look into it.
#
#     my $redis = RustDesk::Redis->start($t->testdir(), port(9),
#         requirepass => 'secret');
#     $redis->cmd('CLIENT', 'LIST');
#     $redis->stop();
#
# The server runs in the foreground under timeout(1), so one that a test
# leaves behind stops by itself; every server started is killed in END,
# also when the test dies.

use warnings;
use strict;

use IO::Socket::INET;
use POSIX qw/ :sys_wait_h /;
use Time::HiRes qw/ sleep time /;

our $SERVER = $ENV{TEST_REDIS_SERVER} || '/usr/bin/redis-server';
our $LIFE = $ENV{TEST_NGINX_LIFE} || 600;

my %running;            # timeout(1)'s pid -> 1

sub available { return -x $SERVER }

# Starts a server on 127.0.0.1:port with its files in dir (a directory of
# its own is made there); options are redis-server's (requirepass => 'x',
# appendonly => 'yes', maxmemory => '2mb', ...).
sub start {
	my ($class, $dir, $port, %o) = @_;

	my $self = bless { port => $port, dir => "$dir/redis-$port",
		opts => { %o } }, $class;

	mkdir $self->{dir};
	return $self->_run();
}

# A Sentinel (redis-server --sentinel) on 127.0.0.1:port that watches the
# primary on 127.0.0.1:primary as "name", with a quorum of one, quick to
# see it down (1 s) and to fail over.
sub sentinel {
	my ($class, $dir, $port, $name, $primary) = @_;

	my $self = bless { port => $port, dir => "$dir/sentinel-$port",
		opts => {} }, $class;

	mkdir $self->{dir};

	open my $fh, '>', "$self->{dir}/sentinel.conf" or die "$!\n";
	print $fh <<"EOC";
port $port
bind 127.0.0.1
daemonize no
dir $self->{dir}
logfile $self->{dir}/redis.log
sentinel monitor $name 127.0.0.1 $primary 1
sentinel down-after-milliseconds $name 1000
sentinel failover-timeout $name 5000
sentinel parallel-syncs $name 1
EOC
	close $fh;

	$self->{sentinel} = "$self->{dir}/sentinel.conf";
	return $self->_run();
}

sub _run {
	my ($self) = @_;

	my @args = ('--port', $self->{port}, '--bind', '127.0.0.1',
		'--dir', $self->{dir}, '--save', '', '--daemonize', 'no',
		'--logfile', "$self->{dir}/redis.log", '--appendonly', 'no');

	# an option of several words (replicaof => [ '127.0.0.1', $port ])
	for my $k (sort keys %{$self->{opts}}) {
		my $v = $self->{opts}{$k};
		push @args, "--$k", ref $v ? @$v : $v;
	}

	@args = ($self->{sentinel}, '--sentinel') if $self->{sentinel};

	my $pid = fork();
	die "Unable to fork(): $!\n" unless defined $pid;

	if ($pid == 0) {
		open STDOUT, '>>', "$self->{dir}/stdout" or die;
		open STDERR, '>&', \*STDOUT or die;
		exec('timeout', '-k', '5', $LIFE, $SERVER, @args)
			or die "Unable to exec(): $!\n";
	}

	$self->{pid} = $pid;
	$running{$pid} = 1;

	my $end = time() + 10;

	while (time() < $end) {
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}",
			Proto => 'tcp');
		if ($s) {
			close $s;
			return $self;
		}

		die "redis-server did not start: " . $self->log() . "\n"
			if waitpid($pid, WNOHANG) == $pid;
		sleep 0.05;
	}

	die "redis-server did not start: " . $self->log() . "\n";
}

sub port { $_[0]->{port} }

sub log {
	my ($self) = @_;
	open my $fh, '<', "$self->{dir}/redis.log" or return '';
	local $/;
	return <$fh> // '';
}

# Stops it (TERM, or the signal given: KILL for a crash) and waits.
sub stop {
	my ($self, $sig) = @_;
	my $pid = delete $self->{pid} or return $self;

	if (($sig // 'TERM') eq 'KILL') {
		# timeout(1) passes TERM on, not KILL: kill the server itself
		my $info = eval { $self->cmd('INFO', 'server') } // '';
		my ($server) = $info =~ /process_id:(\d+)/;
		kill 'KILL', $server if $server;
	}

	kill 'TERM', $pid;
	waitpid($pid, 0);
	delete $running{$pid};

	# the port is free again when nothing answers on it
	my $end = time() + 5;
	while (time() < $end) {
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}",
			Proto => 'tcp') or last;
		close $s;
		sleep 0.05;
	}

	return $self;
}

# Starts it again, on the same port with the same options (and its files).
sub restart {
	my ($self, %o) = @_;
	$self->stop();
	$self->{opts} = { %{$self->{opts}}, %o };
	return $self->_run();
}

# One command (with the password given at start, if any): the reply, an
# error as "ERR ..." prefixed by "-", an array as an array reference.
sub cmd {
	my ($self, @args) = @_;

	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}",
		Proto => 'tcp', Timeout => 5) or die "redis: $!\n";

	if (defined $self->{opts}{requirepass}) {
		print $s _encode('AUTH', $self->{opts}{requirepass});
		_reply($s);
	}

	print $s _encode(@args);
	my $r = _reply($s);
	close $s;

	return $r;
}

sub _encode {
	my (@args) = @_;
	return '*' . @args . "\r\n"
		. join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
}

sub _line {
	my ($s) = @_;
	my $line = <$s>;
	die "redis: connection closed\n" unless defined $line;
	$line =~ s/\r\n$//;
	return $line;
}

sub _reply {
	my ($s) = @_;
	my $line = _line($s);
	my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

	return $rest if $type eq '+' || $type eq ':';
	return "-$rest" if $type eq '-';

	if ($type eq '$') {
		return undef if $rest < 0;
		my $data = '';
		while (length($data) < $rest + 2) {
			my $n = read($s, $data, $rest + 2 - length($data),
				length($data));
			die "redis: connection closed\n" unless $n;
		}
		return substr($data, 0, $rest);
	}

	if ($type eq '*') {
		return undef if $rest < 0;
		return [ map { _reply($s) } 1 .. $rest ];
	}

	die "redis: unexpected reply \"$line\"\n";
}

# The names of the clients connected (CLIENT LIST), sorted.
sub client_names {
	my ($self) = @_;
	my $list = $self->cmd('CLIENT', 'LIST');
	return sort grep { length } map { /\bname=(\S*)/ ? $1 : () }
		split /\n/, $list;
}

END {
	local $?;

	for my $pid (keys %running) {
		kill 'TERM', $pid;
		waitpid($pid, 0);
	}
}

1;
