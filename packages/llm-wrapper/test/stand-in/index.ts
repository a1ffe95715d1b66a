export * from './stand-in-provider.js';
