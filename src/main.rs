fn main() {
    println!("cutover: under construction");
}
