// pg ships no types of its own (they are @types/pg): its 8.11 copy is typed as the current pg.
declare module 'pg-v8-11' {
  import pg from 'pg';
  export default pg;
}
