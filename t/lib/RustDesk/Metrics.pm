package RustDesk::Metrics;

# The metrics listener as the tests see it (README "Metrics and health"):
# a small HTTP client, the exposition parsed into samples, and a real
# Prometheus server (Debian's prometheus package) that scrapes a listener
# and answers PromQL queries.
#
#     my ($status, $headers, $body) = http_get(port(5), '/health');
#     my $m = scrape(port(5));
#     is($m->{'rustdesk_relay_pairs_total'}, 3);
#
#     my $prom = RustDesk::Metrics::Prometheus->start($t, port(5));
#     $prom->wait_scrape();
#     is($prom->value('sum(rustdesk_relay_pairs_total)'), 3);

use warnings;
use strict;

use Exporter qw/ import /;
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw/ sleep time /;

our @EXPORT = qw/ http_get http_raw scrape has_prometheus /;

# A GET (or %o: method, headers as a list of lines, version, host) of the
# path: (status, { lower-case header => value }, body); status undef if
# the server closed without an answer.
sub http_get {
	my ($port, $path, %o) = @_;

	my $req = ($o{method} // 'GET') . " $path "
		. ($o{version} // 'HTTP/1.1') . "\r\n"
		. join('', map { "$_\r\n" } 'Host: localhost', 'Connection: close',
			@{$o{headers} // []}) . "\r\n";

	return parse_answer(http_raw($port, $req, %o));
}

# Raw bytes sent, everything the server sends back until it closes (or
# timeout, default 5 s): the answer's bytes ('' if none, or no connection).
sub http_raw {
	my ($port, $bytes, %o) = @_;

	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
		Proto => 'tcp') or return '';

	$s->syswrite($bytes) if length $bytes;

	my $got = '';
	my $end = time() + ($o{timeout} // 5);
	my $sel = IO::Select->new($s);

	while (time() < $end) {
		last unless $sel->can_read($end - time());
		my $n = $s->sysread($got, 65536, length $got);
		last unless $n;
	}

	close $s;
	return $got;
}

sub parse_answer {
	my ($raw) = @_;

	return (undef, {}, '') unless $raw =~ /\A(HTTP\/1\.\d) (\d{3}) [^\r\n]*\r\n/;
	my $status = $2;

	my ($head, $body) = split /\r\n\r\n/, $raw, 2;
	my %h;

	for my $line ((split /\r\n/, $head)[1 .. 100]) {
		last unless defined $line;
		my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/ or next;
		$h{lc $k} = $v;
	}

	return ($status, \%h, $body // '');
}

# GET /metrics: { 'name' or 'name{labels}' (as the server wrote them) =>
# value }, with the raw text in {_text}; {_status} on a failure.
sub scrape {
	my ($port) = @_;

	my ($status, $h, $body) = http_get($port, '/metrics');
	return { _status => $status // 'none' } unless ($status // 0) == 200;

	my %m = (_text => $body);

	for my $line (split /\n/, $body) {
		next if $line =~ /^#/ || $line !~ /\S/;
		my ($k, $v) = $line =~ /^(\S+(?:\{[^}]*\})?) (\S+)$/ or next;
		$m{$k} = $v;
	}

	return \%m;
}

sub has_prometheus {
	return scalar grep { -x "$_/prometheus" && -x "$_/promtool" }
		split /:/, $ENV{PATH};
}

###############################################################################

package RustDesk::Metrics::Prometheus;

# A Prometheus server of the test's own: its configuration and storage in
# the test directory, listening on a free loopback port, scraping the
# target every second.  It runs under timeout(1) and is stopped with the
# object (or at exit).

use Time::HiRes qw/ sleep time /;
use Test::Nginx ();

my @running;

# $t: the Test::Nginx object; $target: the metrics listener's port; $n:
# the harness port number for Prometheus's own listener.
sub start {
	my ($class, $t, $target, $n) = @_;
	my $d = $t->testdir() . '/prometheus';
	my $port = Test::Nginx::port($n);

	mkdir $d;
	mkdir "$d/data";

	open my $fh, '>', "$d/prometheus.yml" or die "$d/prometheus.yml: $!";
	print $fh <<"END";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: rustdesk
    static_configs:
      - targets: ['127.0.0.1:$target']
END
	close $fh;

	my $pid = fork() // die "fork: $!\n";

	if ($pid == 0) {
		open STDOUT, '>', "$d/prometheus.log" or POSIX::_exit(1);
		open STDERR, '>&', \*STDOUT;
		exec('timeout', '-k', '5', $Test::Nginx::LIFE, 'prometheus',
			"--config.file=$d/prometheus.yml",
			"--storage.tsdb.path=$d/data",
			"--web.listen-address=127.0.0.1:$port",
			'--log.level=warn')
			or POSIX::_exit(127);
	}

	my $self = bless { pid => $pid, port => $port, dir => $d }, $class;
	push @running, $self;

	# up when its API answers
	Test::Nginx::wait_until(sub { defined $self->query('1') }, 30, 0.2);

	return $self;
}

# The decoded JSON of an instant query (its "data"), undef when the server
# does not answer or the query fails.
sub query {
	my ($self, $expr) = @_;

	(my $q = $expr) =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;

	my ($status, $h, $body) = RustDesk::Metrics::http_get($self->{port},
		"/api/v1/query?query=$q", timeout => 5);
	return undef unless ($status // 0) == 200;

	my $r = eval { JSON::PP::decode_json($body) } or return undef;
	return undef unless ($r->{status} // '') eq 'success';
	return $r->{data};
}

# The value of a query whose result is one number ('none' if empty).
sub value {
	my ($self, $expr) = @_;
	my $d = $self->query($expr) // return 'error';
	my $r = $d->{result};
	return 'none' unless ref $r eq 'ARRAY' && @$r;
	return $r->[0]{value}[1];
}

# Waits (timeout seconds, default 30) until the query's value is $want: returns
# the last value.
sub wait_value {
	my ($self, $expr, $want, $timeout) = @_;
	my $got;
	Test::Nginx::wait_until(sub { ($got = $self->value($expr)) eq $want },
		$timeout // 30, 0.2);
	return $got;
}

# The target's health as Prometheus has it: 'up' after a scrape that
# worked, with the scrape's error otherwise.
sub target {
	my ($self) = @_;
	my ($status, $h, $body) = RustDesk::Metrics::http_get($self->{port},
		'/api/v1/targets');
	my $r = eval { JSON::PP::decode_json($body) } or return 'no answer';
	my $t = $r->{data}{activeTargets}[0] or return 'no target';
	return $t->{health} eq 'up' ? 'up' : "$t->{health}: $t->{lastError}";
}

sub stop {
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
}

sub DESTROY { $_[0]->stop() }

END { $_->stop() for @running }

1;
