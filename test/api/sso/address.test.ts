import { expect } from 'chai';
import {
  isPublicAddress,
  lookupHost,
  OutboundRefused,
  outboundRefusal,
  type OutboundPolicy,
} from '../../../api/src/sso/address.js';

describe('isPublicAddress', () => {
  const publicAddresses = [
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '100.63.255.255', // just below CGNAT
    '100.128.0.0', // just above CGNAT
    '172.15.255.255', // just below 172.16/12
    '172.32.0.0', // just above 172.16/12
    '223.255.255.255', // last address before multicast
    '2606:4700:4700::1111',
    '2001:4860:4860::8888',
    '2a00:1450:4001:81b::200e',
    '::ffff:8.8.8.8', // IPv4-mapped public
    '::ffff:808:808', // the same, as WHATWG URL parsing writes it
    '64:ff9b::808:808', // NAT64 of a public address
    '2002:808:808::1', // 6to4 of a public address
  ];
  for (const ip of publicAddresses) {
    it(`accepts ${ip}`, () => {
      expect(isPublicAddress(ip)).to.equal(true);
    });
  }

  const nonPublic: Array<[string, string]> = [
    ['0.0.0.0', 'IPv4 unspecified'],
    ['0.1.2.3', 'this network'],
    ['10.0.0.1', 'private 10/8'],
    ['10.255.255.255', 'private 10/8, last address'],
    ['172.16.0.1', 'private 172.16/12'],
    ['172.31.255.255', 'private 172.16/12, last address'],
    ['192.168.1.1', 'private 192.168/16'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback, far end'],
    ['169.254.169.254', 'link-local cloud metadata'],
    ['100.64.0.1', 'CGNAT'],
    ['100.127.255.255', 'CGNAT, last address'],
    ['192.0.0.8', 'IETF protocol assignments'],
    ['192.0.2.1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'IPv6 unspecified'],
    ['::1', 'IPv6 loopback'],
    ['0:0:0:0:0:0:0:1', 'IPv6 loopback, long form'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback, hex form'],
    ['::ffff:10.0.0.1', 'IPv4-mapped private'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped link-local metadata'],
    ['::ffff:0.0.0.0', 'IPv4-mapped unspecified'],
    ['::127.0.0.1', 'IPv4-compatible loopback'],
    ['64:ff9b::a00:1', 'NAT64 of a private address'],
    ['64:ff9b:1::1', 'local-use NAT64'],
    ['2002:a00:1::1', '6to4 of a private address'],
    ['2002:7f00:1::', '6to4 of loopback'],
    ['fc00::1', 'unique local'],
    ['fd12:3456:789a::1', 'unique local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local with zone'],
    ['febf:ffff::1', 'link-local, last block'],
    ['fec0::1', 'site-local'],
    ['ff02::1', 'multicast'],
    ['ff05::1:3', 'multicast'],
    ['100::1', 'discard-only'],
    ['2001::1', 'Teredo'],
    ['2001:db8::1', 'documentation'],
    ['3fff::1', 'documentation'],
    ['4000::1', 'outside global unicast'],
  ];
  for (const [ip, what] of nonPublic) {
    it(`rejects ${ip} (${what})`, () => {
      expect(isPublicAddress(ip)).to.equal(false);
    });
  }

  for (const input of [
    '',
    'localhost',
    'example.com',
    '127.1',
    '0x7f.0.0.1',
    '[::1]',
    '1::2::3',
    '256.0.0.1',
  ]) {
    it(`rejects the non-literal ${JSON.stringify(input)}`, () => {
      expect(isPublicAddress(input)).to.equal(false);
    });
  }
});

describe('outboundRefusal', () => {
  function policy(
    addresses: Record<string, string[]>,
    allowPrivate = false,
  ): OutboundPolicy & { asked: string[] } {
    const asked: string[] = [];
    return {
      allowPrivate,
      asked,
      resolveHost: (host) => {
        asked.push(host);
        const found = addresses[host];
        return found ? Promise.resolve(found) : Promise.reject(new Error(`ENOTFOUND ${host}`));
      },
    };
  }

  it('allows https to a host that resolves only to public addresses', async () => {
    const p = policy({ 'idp.example.com': ['93.184.216.34', '2606:2800:220:1::1'] });
    expect(await outboundRefusal(new URL('https://idp.example.com/realm'), p)).to.equal(undefined);
    expect(p.asked).to.deep.equal(['idp.example.com']);
  });

  it('refuses a host when any of its addresses is private', async () => {
    const p = policy({ 'idp.example.com': ['93.184.216.34', '10.0.0.7'] });
    const refusal = await outboundRefusal(new URL('https://idp.example.com/'), p);
    // The address is for the log only: whoever chose the URL learns nothing about the network.
    expect(refusal?.message).to.equal('idp.example.com resolves to a non-public address');
    expect(refusal?.detail).to.include('10.0.0.7');
  });

  it('refuses plain http', async () => {
    const p = policy({ 'idp.example.com': ['93.184.216.34'] });
    expect((await outboundRefusal(new URL('http://idp.example.com/'), p))?.message).to.include('http:');
    expect(p.asked).to.deep.equal([]);
  });

  it('refuses literal private addresses without resolving them', async () => {
    const p = policy({});
    for (const url of [
      'https://127.0.0.1/',
      'https://0x7f.1/',
      'https://2130706433/',
      'https://[::1]/',
      'https://[::ffff:127.0.0.1]/',
      'https://[fd00::1]:8443/x',
      'https://169.254.169.254/latest/meta-data',
    ]) {
      expect(await outboundRefusal(new URL(url), p), url).to.be.instanceOf(OutboundRefused);
    }
    expect(p.asked).to.deep.equal([]);
  });

  it('refuses localhost through the system resolver', async () => {
    const refusal = await outboundRefusal(new URL('https://localhost/'), {
      allowPrivate: false,
      resolveHost: lookupHost,
    });
    expect(refusal?.message).to.equal('localhost resolves to a non-public address');
    expect(refusal?.detail).to.match(/localhost resolves to non-public address (127\.0\.0\.1|::1)/);
  });

  it('refuses a host that does not resolve', async () => {
    expect((await outboundRefusal(new URL('https://nowhere.example/'), policy({})))?.message).to.include(
      'does not resolve',
    );
  });

  it('refuses URLs carrying credentials', async () => {
    const p = policy({ 'idp.example.com': ['93.184.216.34'] });
    expect((await outboundRefusal(new URL('https://u:p@idp.example.com/'), p))?.message).to.include(
      'credentials',
    );
  });

  it('allows http and private addresses only when private issuers are allowed', async () => {
    const p = policy({}, true);
    expect(await outboundRefusal(new URL('http://127.0.0.1:4000/'), p)).to.equal(undefined);
    expect((await outboundRefusal(new URL('ftp://127.0.0.1/'), p))?.message).to.include('ftp:');
  });
});
