import { describe, expect, it } from 'vitest';
import { addressSubject, clientAddressKey } from '../src/client-address.js';

describe('clientAddressKey', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['2001:db8:abcd:12ff:1:2:3:4', '2001:db8:abcd:1200::/56'],
    ['2001:DB8:ABCD:12FF::1', '2001:db8:abcd:1200::/56'],
    ['2001:db8:abcd:1201::1', '2001:db8:abcd:1200::/56'],
    ['[2001:db8::1]', '2001:db8::/56'],
    ['fe80::1%eth0', 'fe80::/56'],
    ['::1', '::/56'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::ffff:cb00:7107', '203.0.113.7'],
    ['64:ff9b::192.0.2.33', '64:ff9b::/56'],
    ['/var/run/app.sock', '/var/run/app.sock'],
    ['1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8:9'],
    ['2001:db8::1::2', '2001:db8::1::2'],
    ['256.1.1.1', '256.1.1.1'],
  ])('keys %s as %s', (address, key) => {
    expect(clientAddressKey(address)).toBe(key);
  });

  it('keeps the prefix length it is given', () => {
    expect(clientAddressKey('2001:db8:abcd:12ff:1:2:3:4', 64)).toBe('2001:db8:abcd:12ff::/64');
    expect(clientAddressKey('2001:db8:abcd:12ff:1:2:3:4', 48)).toBe('2001:db8:abcd::/48');
    expect(clientAddressKey('2001:db8:abcd:12ff:1:2:3:4', 128)).toBe(
      '2001:db8:abcd:12ff:1:2:3:4/128',
    );
  });

  it('makes an anonymous subject that cannot collide with a user id', () => {
    expect(addressSubject('2001:db8:abcd:12ff::9')).toEqual({
      userId: 'ip:2001:db8:abcd:1200::/56',
    });
  });
});
